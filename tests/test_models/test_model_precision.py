"""Whole-model bf16 inference of the fast Mask R-CNN: float32 at the boundaries, fp32 untouched, training untouched."""
from __future__ import annotations

import copy

import pytest
import torch
from tiny_models import build, make_sample_batch, tiny_model_cfg

from mmcell.models import fast_inference_model_cfg
from mmcell.models.precision import autocast_forward, outputs_to_fp32

pytest.importorskip('mmcv.ops')


def _predict(model, batch):
    with torch.no_grad():
        return model.test_step(copy.deepcopy(batch))[0].pred_instances


def test_bf16_inference_close_to_fp32_and_fp32_untouched():
    from mmdet.structures.bbox import bbox_overlaps

    cfg = tiny_model_cfg(dets=100)
    fp32 = build(fast_inference_model_cfg(cfg, precision='fp32', mask_format='rle'))
    bf16 = build(fast_inference_model_cfg(cfg, precision='bf16', mask_format='rle'), state_dict=fp32.state_dict())
    # fp32 wraps nothing: the code path (and so the results) of before the switch
    assert fp32.precision == 'fp32' and 'forward' not in vars(fp32.rpn_head)
    assert 'forward' not in vars(fp32.roi_head.bbox_head)
    assert bf16.roi_head.mask_head.precision == 'bf16' and 'forward' in vars(bf16.rpn_head)
    assert set(bf16.state_dict()) == set(fp32.state_dict())  # the same checkpoints load
    batch = make_sample_batch(160, 192, scale=1.5)
    ref, got = _predict(fp32, batch), _predict(bf16, batch)
    assert got.bboxes.dtype == got.scores.dtype == torch.float32
    assert len(got) == len(ref)
    # random weights: many near-tied scores, so compare the sets of boxes, not ranks
    assert bbox_overlaps(ref.bboxes, got.bboxes).max(1).values.median() > 0.95
    torch.testing.assert_close(got.scores.sort().values, ref.scores.sort().values, atol=0.02, rtol=0.05)

    feats = bf16.extract_feat(bf16.data_preprocessor(copy.deepcopy(batch), False)['inputs'])
    assert all(f.dtype == torch.float32 for f in feats)  # RoIAlign and the RPN read float32
    # training (and autograd) run the original modules in float32, whatever the precision
    bf16.train()
    fp32.train()
    x = torch.randn(1, 3, 64, 64)
    a, b = bf16.extract_feat(x), fp32.extract_feat(x)
    assert all(torch.equal(i, j) for i, j in zip(a, b))
    ra, rb = bf16.rpn_head(a), fp32.rpn_head(b)
    assert all(torch.equal(i, j) for i, j in zip(ra[0], rb[0]))
    with pytest.raises(ValueError, match='precision'):
        build(fast_inference_model_cfg(cfg, precision='fp8'))


def test_autocast_forward_survives_deepcopy_and_casts_outputs():
    conv = autocast_forward(torch.nn.Conv2d(3, 4, 3)).eval()
    twin = copy.deepcopy(conv)
    assert twin.forward.__self__ is twin
    with torch.no_grad():
        out = twin(torch.randn(1, 3, 8, 8))
    assert out.dtype == torch.float32
    nested = outputs_to_fp32(([torch.ones(1, dtype=torch.bfloat16)], dict(a=torch.ones(1, dtype=torch.float16)),
                              torch.ones(1, dtype=torch.long)))
    assert nested[0][0].dtype == torch.float32 and nested[1]['a'].dtype == torch.float32
    assert nested[2].dtype == torch.long


def test_fast_training_roi_extractor_matches_mmcv_values_and_gradients():
    from mmdet.registry import MODELS

    cfg = dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
               out_channels=8, featmap_strides=[4, 8, 16, 32])
    mmcv_ext = MODELS.build(cfg).train()
    fast_ext = MODELS.build(dict(cfg, type='FastRoIExtractor', fast_training=True)).train()
    torch.manual_seed(0)
    feats = [torch.randn(2, 8, 128 // s, 128 // s, requires_grad=True) for s in (4, 8, 16, 32)]
    xy = torch.rand(40, 2) * 100
    rois = torch.cat([torch.randint(0, 2, (40, 1)).float(), xy, xy + torch.rand(40, 2) * 120 + 4], 1)
    grads = []
    for ext in (mmcv_ext, fast_ext):
        out = ext(feats, rois)
        (out * torch.arange(out.numel()).view_as(out).sin()).sum().backward()
        grads.append([f.grad.clone() for f in feats])
        for f in feats:
            f.grad = None
        grads[-1].append(out.detach())
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert not MODELS.build(dict(cfg, type='FastRoIExtractor')).fast_training  # opt-in
