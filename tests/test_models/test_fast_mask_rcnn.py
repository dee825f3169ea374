"""The fast CPU Mask R-CNN modules give upstream mmdet's detections and masks (same weights)."""
from __future__ import annotations

import copy
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from tiny_models import build, dense_masks, make_sample_batch, mask_iou, tiny_model_cfg

from mmcell.models import FastFCNMaskHead, RLEMasks, fast_inference_model_cfg

pytest.importorskip('mmcv.ops')


@pytest.fixture(scope='module')
def trained_pair(trained_quickstart):
    """(upstream, fast) Mask R-CNN with the quickstart checkpoint and a 2x-upscaled synthetic test image."""
    from mmengine.config import Config

    from mmcell.apis.builder import init_cell_model
    from mmcell.datasets.image_io import read_image

    cfg = Config.fromfile(trained_quickstart.config)
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    upstream = init_cell_model(cfg, trained_quickstart.checkpoint, fast=False)  # --no-fast: mmdet's own modules
    fast = init_cell_model(cfg, trained_quickstart.checkpoint, precision='fp32')  # the builder's default route
    assert type(upstream).__name__ == 'MaskRCNN' and type(fast).__name__ == 'FastMaskRCNN'
    path = sorted(glob.glob(osp.join(trained_quickstart.data_root, 'test_release', '*.tif')))[0]
    rgb = read_image(path)
    batch = make_sample_batch(rgb.shape[0], rgb.shape[1], scale=2.0, img=rgb[..., ::-1].transpose(2, 0, 1))
    return upstream, fast, batch


def _predict(model, batch):
    with torch.no_grad():
        return model.test_step(copy.deepcopy(batch))[0].pred_instances


def test_fast_equals_upstream_on_trained_model(trained_pair):
    upstream, fast, batch = trained_pair
    from mmdet.structures.bbox import bbox_overlaps

    ref, got = _predict(upstream, batch), _predict(fast, batch)
    assert len(ref) > 10 and len(got) == len(ref)
    assert isinstance(got.masks, RLEMasks) and got.masks.shape == tuple(ref.masks.shape)
    # RoIAlign sums in another order (1e-6): a weakly trained model's near-tied scores may swap detections at
    # the max_per_img cut, so instances are matched by label and box instead of by rank
    ov = bbox_overlaps(ref.bboxes, got.bboxes)
    ov[ref.labels[:, None] != got.labels[None]] = -1
    best, j = ov.max(1)
    matched = best > 0.999
    assert matched.float().mean() >= 0.97
    ref_masks = ref.masks.numpy()[matched.numpy()]
    assert ref_masks.sum() > 0
    assert mask_iou(dense_masks(got.masks)[j[matched].numpy()], ref_masks).min() >= 0.99


def test_mask_score_gate(trained_pair):
    upstream, fast, batch = trained_pair
    full = _predict(fast, batch)
    thr = float(full.scores.median())
    rcnn = fast.roi_head.test_cfg
    try:
        rcnn.mask_score_thr, rcnn.low_score_masks = thr, 'box'
        gated = _predict(fast, batch)
        rcnn.low_score_masks = 'drop'
        dropped = _predict(fast, batch)
    finally:
        rcnn.mask_score_thr, rcnn.low_score_masks = 0.0, 'box'
    high = full.scores >= thr
    assert len(gated) == len(full) and len(dropped) == int(high.sum())
    # the kept detections come first with the very same masks; the others are filled boxes
    n_high = int(high.sum())
    assert mask_iou(dense_masks(dropped.masks), dense_masks(full[high].masks)).min() == 1.0
    low = gated[n_high:]
    boxes = low.bboxes.round().long()
    areas = ((boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)).numpy()
    assert np.array_equal(dense_masks(low.masks).sum((1, 2)), areas)


def test_bitmap_format_bn_folding_and_training_path_untouched():
    cfg = tiny_model_cfg(dets=50)
    cfg.backbone.norm_cfg = dict(type='BN', requires_grad=True)  # BatchNorm: folded into convs at inference
    upstream = build(cfg)
    g = torch.Generator().manual_seed(0)
    state = {k: (torch.rand(v.shape, generator=g) + 0.5 if k.endswith('running_var') else
                 torch.randn(v.shape, generator=g) * 0.1 if k.endswith('running_mean') else v)
             for k, v in upstream.state_dict().items()}
    upstream.load_state_dict(state)
    fast = build(fast_inference_model_cfg(cfg, mask_format='bitmap'), state_dict=state)
    batch = make_sample_batch(64, 80, scale=1.5)
    ref, got = _predict(upstream, batch), _predict(fast, batch)
    assert isinstance(fast._get_inference_backbone().bn1, torch.nn.Identity)
    assert set(fast.state_dict()) == set(upstream.state_dict())  # the folded copy is not in the checkpoint
    assert got.masks.dtype == torch.bool and got.masks.shape == ref.masks.shape and len(got) == len(ref)
    torch.testing.assert_close(got.bboxes, ref.bboxes, atol=1e-3, rtol=1e-4)
    assert mask_iou(got.masks.numpy(), ref.masks.numpy()).min() >= 0.99
    # in train mode (or with autograd) the fast modules defer to mmdet: identical RoI features
    fast.train()
    feats = fast.extract_feat(torch.randn(1, 3, 64, 96))
    rois = torch.tensor([[0, 4.0, 4.0, 40.0, 30.0]])
    a = fast.roi_head.mask_roi_extractor(feats[:4], rois)
    upstream.train()
    b = upstream.roi_head.mask_roi_extractor(feats[:4], rois)
    assert a.requires_grad and torch.equal(a, b)


def test_cheaper_mask_head_precisions():
    torch.manual_seed(0)
    head = FastFCNMaskHead(num_convs=2, in_channels=32, conv_out_channels=32, num_classes=4).eval()
    head.init_weights()
    x = torch.relu(torch.randn(64, 32, 14, 14))
    with torch.no_grad():
        head.precision = 'fp32'
        ref = head(x)
        for precision in ('bf16', 'int8'):
            head.precision = precision
            out = head(x)
            assert out.shape == ref.shape and out.dtype == torch.float32
            rel = ((out - ref).norm() / ref.norm()).item()
            assert rel < 0.05, (precision, rel)
    assert head._int8_model is not None  # calibrated once, then reused
    with pytest.raises(ValueError, match='precision'):
        FastFCNMaskHead(num_classes=4, precision='fp8')
    normed = FastFCNMaskHead(num_convs=1, in_channels=8, conv_out_channels=8, num_classes=4, precision='int8',
                             norm_cfg=dict(type='GN', num_groups=4)).eval()
    with torch.no_grad(), pytest.raises(ValueError, match='int8'):
        normed(torch.randn(2, 8, 14, 14))


def test_fast_cfg_refuses_other_detectors():
    with pytest.raises(ValueError, match='MaskRCNN'):
        fast_inference_model_cfg(dict(type='RTMDet'))
