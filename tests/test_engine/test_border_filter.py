"""BorderFilterHook removes border-touching predictions before the evaluator: same checkpoint, hook on/off."""
from __future__ import annotations

import copy
import os.path as osp

import numpy as np
import pytest
import torch

pytest.importorskip('mmcv.ops')

from mmdet.structures import DetDataSample  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from mmcell.engine.hooks.border_filter import BorderFilterHook  # noqa: E402
from mmcell.evaluation.postprocess import boxes_touching_border, filter_border_instances  # noqa: E402


def test_boxes_touching_border():
    boxes = np.array([[0, 10, 5, 20],  # left edge
                      [10, 10, 20, 20],  # inside
                      [10, 1.5, 20, 8],  # 1.5 px from the top
                      [40, 30, 50, 40],  # right/bottom edge of a 50x40 image
                      [47, 10, 48.5, 20]])  # 1.5 px from the right
    assert boxes_touching_border(boxes, 40, 50, margin=0).tolist() == [True, False, False, True, False]
    assert boxes_touching_border(boxes, 40, 50, margin=2).tolist() == [True, False, True, True, True]
    assert boxes_touching_border(torch.as_tensor(boxes), 40, 50, margin=1).tolist() == \
        [True, False, False, True, False]


def test_filter_border_instances_in_place():
    sample = DetDataSample(metainfo=dict(ori_shape=(40, 50), img_shape=(80, 100)))
    masks = torch.zeros(3, 40, 50, dtype=torch.bool)
    sample.pred_instances = InstanceData(bboxes=torch.tensor([[0., 0, 5, 5], [10, 10, 20, 20], [45, 5, 50, 9]]),
                                         scores=torch.tensor([0.9, 0.8, 0.7]), labels=torch.tensor([0, 1, 2]),
                                         masks=masks)
    assert filter_border_instances(sample, margin=1) == 2
    assert sample.pred_instances.labels.tolist() == [1]
    assert sample.pred_instances.masks.shape == (1, 40, 50)
    with pytest.raises(ValueError, match='apply_to'):
        BorderFilterHook(apply_to=('train',))


def _test_runner(run, work_dir: str, hooks: list):
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(run.config)
    cfg.work_dir = work_dir
    cfg.load_from = run.checkpoint
    cfg.custom_hooks = hooks
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    cfg.test_evaluator = [
        dict(type='CellCocoMetric', ann_file=osp.join(run.data_root, 'test_gt_coco.json'), metric='segm'),
        dict(type='CellSubmissionMetric', out_dir=work_dir)]
    cfg.default_hooks.pop('visualization', None)
    return Runner.from_cfg(cfg)


def test_hook_changes_what_the_metric_measures(trained_quickstart, tmp_path):
    from mmcell.evaluation.submission import load_submission

    margin = 8.0
    off = _test_runner(trained_quickstart, str(tmp_path / 'off'), []).test()
    hook = dict(type='BorderFilterHook', margin=margin, apply_to=('val', 'test'))
    on = _test_runner(trained_quickstart, str(tmp_path / 'on'), [hook]).test()

    assert off['submission/num_detections'] > 0
    assert on['submission/num_detections'] < off['submission/num_detections']
    assert on != off
    # The written submission (what the metric and the writer saw) has no box within the margin of the border.
    results = load_submission(tmp_path / 'on' / 'test-results.json')
    sizes = {}
    for r in results:
        sizes[r['image_id']] = r['segmentation']['size']
        x, y, w, h = r['bbox']
        height, width = sizes[r['image_id']]
        assert x > margin and y > margin and x + w < width - margin and y + h < height - margin
    off_results = load_submission(tmp_path / 'off' / 'test-results.json')
    touching = [r for r in off_results if r['bbox'][0] <= margin or r['bbox'][1] <= margin]
    assert touching, 'without the hook some detections touch the border'
    # Everything the hook kept was predicted identically without it.
    assert len(results) == len(off_results) - sum(
        boxes_touching_border(np.array([r['bbox'][:2] + [r['bbox'][0] + r['bbox'][2], r['bbox'][1] + r['bbox'][3]]]),
                              *r['segmentation']['size'], margin)[0] for r in copy.deepcopy(off_results))
