"""The batched kernels give upstream's numbers: mmcv RoIAlign and mmdet's per-detection mask paste."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from mmcell.models.fast_ops import RLEMasks, multilevel_roi_align, paste_masks_dense, paste_masks_rle, roi_align

mmcv_ops = pytest.importorskip('mmcv.ops')


def _rois(n: int, h: int, w: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w - 4.0, h - 4.0])
    wh = torch.rand(n, 2, generator=g) * 60 + 0.5
    boxes = torch.cat([xy, torch.minimum(xy + wh, torch.tensor([float(w), float(h)]))], 1)
    # edge cases: touching the border, the whole image, zero and sub-pixel size
    boxes[:4] = torch.tensor([[0, 0, 20, 30], [w - 15.0, h - 9.0, w, h], [0, 0, w, h], [7, 7, 7, 7]])
    idx = torch.randint(0, batch, (n, 1), generator=g).float()
    return torch.cat([idx, boxes], 1)


@pytest.mark.parametrize('aligned,sampling,out', [(True, 0, (14, 14)), (False, 2, (7, 7)), (True, 1, (7, 5))])
def test_roi_align_matches_mmcv(aligned, sampling, out):
    torch.manual_seed(0)
    feat = torch.randn(2, 8, 24, 30)
    rois = _rois(60, 96, 120, batch=2)
    ref = mmcv_ops.RoIAlign(out, 0.25, sampling, aligned=aligned)(feat, rois)
    got = roi_align(feat.contiguous(memory_format=torch.channels_last), rois, out, 0.25, sampling, aligned)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_multilevel_roi_align_matches_per_level_mmcv():
    torch.manual_seed(1)
    feats = [torch.randn(1, 8, 32 // s, 40 // s) for s in (1, 2, 4)]
    scales = [0.25, 0.125, 0.0625]
    rois = _rois(50, 128, 160)
    levels = torch.randint(0, 3, (50, ))
    got = multilevel_roi_align(feats, rois, levels, (7, 7), scales)
    for lvl in range(3):
        sel = levels == lvl
        ref = mmcv_ops.RoIAlign((7, 7), scales[lvl], 0, aligned=True)(feats[lvl], rois[sel])
        torch.testing.assert_close(got[sel], ref, atol=1e-4, rtol=1e-4)


def _upstream_paste(probs: torch.Tensor, boxes: torch.Tensor, h: int, w: int, thr: float) -> torch.Tensor:
    """mmdet's own CPU paste (one detection at a time) through FCNMaskHead._predict_by_feat_single."""
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead
    from mmengine.config import ConfigDict

    head = FCNMaskHead(num_convs=0, in_channels=4, num_classes=1, class_agnostic=True)
    logits = torch.logit(probs.clamp(1e-6, 1 - 1e-6))[:, None]
    return head._predict_by_feat_single(logits, boxes.clone(), torch.zeros(len(boxes), dtype=torch.long),
                                        dict(scale_factor=(1.0, 1.0), ori_shape=(h, w)),
                                        ConfigDict(mask_thr_binary=thr), rescale=True)


def test_paste_to_rle_equals_upstream_paste_and_pycocotools():
    h, w = 41, 57
    torch.manual_seed(2)
    boxes = _rois(120, h, w, seed=3)[:, 1:]
    boxes[4] = torch.tensor([3.0, 0.0, 9.0, float(h)])  # full height: runs continue across columns
    probs = torch.rand(120, 28, 28)
    probs[::7] = 0.95
    ref = _upstream_paste(probs, boxes, h, w, 0.5)
    dense = paste_masks_dense(probs, boxes, h, w, 0.5, bucket=16)
    assert torch.equal(dense, ref)
    rles = paste_masks_rle(probs, boxes, h, w, 0.5, bucket=16)
    assert isinstance(rles, RLEMasks) and rles.shape == (120, h, w)
    expected = mask_util.encode(np.asfortranarray(ref.numpy().transpose(1, 2, 0).astype(np.uint8)))
    assert [r['counts'] for r in rles] == [e['counts'] for e in expected]
    assert np.array_equal(rles.to_ndarray(), ref.numpy())


def test_paste_empty_inputs():
    assert paste_masks_rle(torch.zeros(0, 28, 28), torch.zeros(0, 4), 10, 12).shape == (0, 10, 12)
    assert paste_masks_dense(torch.zeros(0, 28, 28), torch.zeros(0, 4), 10, 12).shape == (0, 10, 12)
