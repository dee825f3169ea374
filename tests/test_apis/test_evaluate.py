"""evaluate_data_root / tools/analysis_tools/eval_real.py on the briefly trained quickstart model."""
from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip('mmcv.ops')

from conftest import REPO, run_tool  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402

from mmcell.apis.builder import init_cell_model  # noqa: E402
from mmcell.apis.evaluate import evaluate_data_root, with_gt_instances  # noqa: E402
from mmcell.datasets import CellInstanceDataset  # noqa: E402
from mmcell.evaluation.metrics.cell_coco_metric import CellCocoMetric  # noqa: E402


@pytest.fixture(scope='module')
def agnostic(trained_quickstart):
    t = trained_quickstart
    return evaluate_data_root(t.config, t.checkpoint, t.data_root, class_agnostic=True)


def test_class_agnostic_equals_a_direct_metric(trained_quickstart, agnostic, tmp_path):
    """The Runner route gives the figures of CellCocoMetric(class_agnostic) fed by hand with the model's output."""
    t = trained_quickstart
    model = init_cell_model(t.config, t.checkpoint)
    dataset = CellInstanceDataset(data_root=t.data_root, split='all', test_mode=True, class_agnostic=True,
                                  metainfo=dict(classes=('nucleus', )), cache_file=str(tmp_path / 'cache.json'),
                                  pipeline=with_gt_instances(model.cfg.test_dataloader.dataset.pipeline))
    metric = CellCocoMetric(class_agnostic=True, classwise=False)
    metric.dataset_meta = dataset.metainfo
    for index in range(len(dataset)):
        with torch.no_grad():
            outputs = model.test_step(pseudo_collate([copy.deepcopy(dataset[index])]))
        metric.process({}, [o.to_dict() for o in outputs])
    direct = {k[len('coco/'):]: v for k, v in metric.evaluate(len(dataset)).items()}
    assert len(dataset) == 6  # every training folder, not a split
    for key in ('segm_mAP_50_md1000', 'segm_mAP_md1000', 'segm_mAP_50', 'bbox_mAP_50_md1000'):
        assert agnostic[key] == pytest.approx(direct[key], abs=1e-9), key
    assert 0 < agnostic['segm_mAP_50_md1000'] <= 1


def test_class_agnostic_at_least_per_class(trained_quickstart, agnostic):
    t = trained_quickstart
    per_class = evaluate_data_root(t.config, t.checkpoint, t.data_root)
    assert 'segm_lymphocyte_AP50' in per_class and 'segm_nucleus_AP50' not in per_class
    # a weak 4-class model confuses classes; scored as one class it only loses its localisation errors
    assert agnostic['segm_mAP_50_md1000'] >= per_class['segm_mAP_50_md1000']


def test_eval_real_tool(trained_quickstart, tmp_path):
    t = trained_quickstart
    out = run_tool(sys.executable, 'tools/analysis_tools/eval_real.py', t.config, t.checkpoint, t.data_root,
                   '--class-agnostic', '--cfg-options', 'model.test_cfg.rcnn.max_per_img=100').stdout
    assert 'class-agnostic' in out
    assert 'segm AP50 (maxDets 1000)' in out and 'bbox AP (maxDets 1000)' in out
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    proc = subprocess.run([sys.executable, 'tools/analysis_tools/eval_real.py', t.config, str(bad), t.data_root],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f'{bad}: ') and 'checkpoint' in last  # the one builder's CheckpointError
    assert 'Traceback' not in proc.stderr


def test_mismatched_checkpoint_is_refused(trained_quickstart):
    t = trained_quickstart
    with pytest.raises(ValueError, match="trained for 4 classes"):
        evaluate_data_root(t.config, t.checkpoint, t.data_root,
                           cfg_options={'model.roi_head.bbox_head.num_classes': 1})
