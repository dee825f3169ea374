"""Weighted box fusion + mask voting (TTA and ensembles) and ``tools/predict.py --models``."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmengine.structures import InstanceData

from mmcell.models.fusion import fuse_instances

pytest.importorskip('mmcv.ops')
H, W = 40, 50


def _inst(boxes, scores, labels, masks=None):
    boxes = torch.tensor(boxes, dtype=torch.float32)
    if masks is None:
        masks = np.zeros((len(boxes), H, W), dtype=bool)
        for m, (x1, y1, x2, y2) in zip(masks, boxes.long().tolist()):
            m[y1:y2, x1:x2] = True
    return InstanceData(bboxes=boxes, scores=torch.tensor(scores), labels=torch.tensor(labels),
                        masks=torch.tensor(masks))


def test_identical_models_fuse_to_the_same_instances():
    a = _inst([[2, 2, 12, 10], [20, 5, 30, 18], [21, 6, 31, 19]], [0.9, 0.8, 0.4], [0, 1, 2])
    fused = fuse_instances([a, a], None, H, W)
    assert len(fused) == 3
    torch.testing.assert_close(fused.bboxes, a.bboxes)
    torch.testing.assert_close(fused.scores, a.scores)
    assert fused.masks.shape == (3, H, W)
    assert np.array_equal(fused.masks.to_ndarray(), a.masks.numpy())


def test_votes_weights_and_scores():
    base = [4, 4, 14, 14]
    shifted = [5, 4, 15, 14]
    m1 = _inst([base], [0.8], [0])
    m2 = _inst([shifted], [0.6], [0])
    m3 = _inst([[30, 30, 40, 38]], [0.9], [1])  # seen by one model only
    fused = fuse_instances([m1, m2, m3], [1.0, 1.0, 2.0], H, W, iou_thr=0.5)
    assert len(fused) == 2
    # each model's best score, weighted mean over all models (missing = 0)
    expected = sorted([(0.8 + 0.6) / 4, 0.9 * 2 / 4], reverse=True)
    torch.testing.assert_close(fused.scores, torch.tensor(expected))
    cell = fused[fused.labels == 0]
    box = cell.bboxes[0]
    torch.testing.assert_close(box, (torch.tensor(base) * 0.8 + torch.tensor(shifted) * 0.6) / 1.4)
    # pixel voting: columns 4 (only m1, weight 0.8 of 1.4) and 14 (only m2, 0.6 of 1.4) at vote_thr 0.5
    mask = mask_util.decode(cell.masks[0]).astype(bool)
    assert mask[4:14, 4].all() and not mask[:, 14].any() and mask[4:14, 5:14].all()


def test_ensemble_tool_writes_valid_submission(trained_quickstart, tmp_path):
    from mmcell.evaluation.submission import load_submission
    from tests.conftest import load_script

    predict_tool = load_script('tools/predict.py')
    out = tmp_path / 'ens.zip'
    spec = f'{trained_quickstart.config}:{trained_quickstart.checkpoint}'
    model = [trained_quickstart.config, trained_quickstart.checkpoint]
    predict_tool.main([*model, '--models', f'{spec}:2', '--data-root', trained_quickstart.data_root, '--out',
                       str(out)])
    with pytest.raises(SystemExit, match='CONFIG:CHECKPOINT'):
        predict_tool.main([*model, '--models', 'only-a-config.py', '--data-root', trained_quickstart.data_root])
    results = load_submission(str(out))
    assert len(results) > 0 and {r['category_id'] for r in results} <= {1, 2, 3, 4}
