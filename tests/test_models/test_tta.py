"""Mask TTA: exact de-augmentation, flip/rotation invariance, and tools/test.py --tta on a trained model."""
from __future__ import annotations

import copy
import itertools
import sys

import numpy as np
import pytest
import torch
from tiny_models import build, dense_masks, make_sample_batch, mask_iou, tiny_model_cfg

from mmcell.models.tta import (
    CellTTAModel,
    augment_boxes,
    augment_image,
    deaugment_boxes,
    deaugment_mask_grids,
    tta_pipeline_of,
)

pytest.importorskip('mmcv.ops')
GEOMS = list(itertools.product([False, True], [False, True], range(4)))


@pytest.mark.parametrize('geom', GEOMS)
def test_box_and_grid_maps_follow_the_image(geom):
    h, w = 13, 21
    img = torch.zeros(1, h, w)
    img[0, 2:7, 3:12] = 1  # a box [3, 2, 12, 7] painted into the image
    box = torch.tensor([[3.0, 2.0, 12.0, 7.0]])
    aug = augment_image(img, *geom)[0]
    ys, xs = torch.nonzero(aug, as_tuple=True)
    painted = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
    assert torch.equal(augment_boxes(box, h, w, *geom), painted)
    assert torch.allclose(deaugment_boxes(painted, h, w, *geom), box)
    grid = torch.rand(2, 6, 6)
    crop = augment_image(grid, *geom)  # the mask grid of an augmented box is the augmented grid
    assert torch.equal(deaugment_mask_grids(crop, *geom), grid)


def _tta_predict(tta, batch):
    with torch.no_grad():
        return tta.test_step(copy.deepcopy(batch))[0].pred_instances


def _match(ref, got):
    from mmdet.structures.bbox import bbox_overlaps

    ov = bbox_overlaps(ref.bboxes, got.bboxes)
    ov[ref.labels[:, None] != got.labels[None]] = -1
    return ov.max(1)


@pytest.fixture(scope='module')
def tiny_detector():
    return build(tiny_model_cfg(dets=60))


def test_tta_flip_invariance(tiny_detector):
    tta = CellTTAModel(module=tiny_detector, flips=['none', 'horizontal'])
    batch = make_sample_batch(48, 72, scale=1.5)
    flipped = copy.deepcopy(batch)
    flipped['inputs'][0] = batch['inputs'][0].flip(-1)
    ref, got = _tta_predict(tta, batch), _tta_predict(tta, flipped)
    assert len(ref) > 20 and len(got) == len(ref)
    assert dense_masks(ref.masks).shape == (len(ref), 48, 72)
    back = got.bboxes.clone()
    back[:, [0, 2]] = 72 - got.bboxes[:, [2, 0]]
    got.bboxes = back
    best, j = _match(ref, got)
    assert best.min() > 0.999
    torch.testing.assert_close(got.scores[j], ref.scores, atol=1e-5, rtol=1e-5)
    ious = mask_iou(dense_masks(ref.masks), dense_masks(got.masks)[j.numpy()][:, :, ::-1])
    assert ious.min() >= 0.99


def test_tta_rotation_invariance_and_rle(tiny_detector):
    tta = CellTTAModel(module=tiny_detector, flips=['none'], rotations=[0, 1, 2, 3], tta_cfg=dict(mask_format='rle'))
    # square: every view has the same shape (oneDNN builds kernels per shape; odd-rotation shape swaps are
    # covered by test_box_and_grid_maps_follow_the_image and the tools/test.py run)
    batch = make_sample_batch(48, 48, scale=1.0)
    rotated = make_sample_batch(48, 48, scale=1.0, img=torch.rot90(batch['inputs'][0], 1, (1, 2)).numpy())
    ref, got = _tta_predict(tta, batch), _tta_predict(tta, rotated)
    assert len(got) == len(ref) > 10
    assert got.masks.shape == (len(got), 48, 48)
    # rotate the prediction on the rotated image back
    got.bboxes = deaugment_boxes(got.bboxes, 48, 48, False, False, 1)
    best, j = _match(ref, got)
    assert best.min() > 0.999
    back = np.rot90(dense_masks(got.masks), -1, axes=(1, 2))[j.numpy()]
    assert mask_iou(dense_masks(ref.masks), back).min() >= 0.99


def test_tta_pipeline_of_scales_the_resize():
    pipeline = [dict(type='LoadCellImage'), dict(type='Resize', scale_factor=2.0, keep_ratio=True),
                dict(type='PackDetInputs')]
    tta = tta_pipeline_of(pipeline, scales=[1.0, 1.5])
    assert tta[0] == pipeline[0] and tta[1]['type'] == 'TestTimeAug'
    assert [r['scale_factor'] for r in tta[1]['transforms'][0]] == [2.0, 3.0]
    assert tta[1]['transforms'][1] == [pipeline[2]]
    with pytest.raises(ValueError, match='Resize'):
        tta_pipeline_of([dict(type='LoadCellImage')])


def test_tools_test_tta_on_trained_model(trained_quickstart, tmp_path):
    from conftest import run_tool
    from mmengine.config import Config

    cfg = Config.fromfile(trained_quickstart.config)
    tta_cfg = tmp_path / 'tta.py'
    tta_cfg.write_text(
        f'_base_ = [{trained_quickstart.config!r}]\n'
        "tta_model = dict(type='CellTTAModel', flips=['none'], rotations=[0, 1])\n"
        f'tta_pipeline = {tta_pipeline_of(cfg.test_dataloader.dataset.pipeline, [1.0, 1.25])!r}\n')
    out = tmp_path / 'preds.pkl'
    proc = run_tool(sys.executable, 'tools/test.py', str(tta_cfg), trained_quickstart.checkpoint, '--tta',
                    '--work-dir', str(tmp_path / 'work'), '--out', str(out),
                    '--cfg-options', 'test_dataloader.dataset.indices=1')  # one image keeps it quick
    assert 'segm_mAP_50' in proc.stdout + proc.stderr
    import pickle

    with open(out, 'rb') as fh:
        preds = pickle.load(fh)
    assert len(preds) == 1
    for pred in preds:
        inst = pred['pred_instances']
        h, w = pred['ori_shape']
        assert len(inst['masks']) == len(inst['scores'])
        assert all(tuple(m['size']) == (h, w) for m in inst['masks'])
        assert np.all(np.diff(inst['scores'].numpy()) <= 1e-6)
