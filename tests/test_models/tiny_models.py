"""Tiny random-weight Mask R-CNNs and inputs for the model tests (no training, no download)."""
from __future__ import annotations

import copy

import numpy as np
import torch

QUICKSTART = 'configs/quickstart/mask-rcnn_r18-tiny_fpn_1xb2-cpu_synthetic.py'


def tiny_model_cfg(norm: bool = True, dets: int = 100, width: int | None = None):
    """The quickstart Mask R-CNN (ResNet-18 at half width) with test settings that keep many detections."""
    from mmengine.config import Config

    from mmcell.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(QUICKSTART)
    model = copy.deepcopy(cfg.model)
    model.backbone.init_cfg = None
    if width is not None:  # an even smaller backbone/neck (big-image tests)
        model.backbone.base_channels = width
        model.neck.in_channels = [width, width * 2, width * 4, width * 8]
        neck = model.neck.out_channels = width * 2
        model.neck.norm_cfg = None
        model.rpn_head.in_channels = model.rpn_head.feat_channels = neck
        roi = model.roi_head
        roi.bbox_roi_extractor.out_channels = roi.mask_roi_extractor.out_channels = neck
        roi.bbox_head.in_channels = neck
        roi.mask_head.in_channels = roi.mask_head.conv_out_channels = neck
        roi.mask_head.norm_cfg = None
    if not norm:  # mmdet's plain mask head (int8 path needs convs without GroupNorm)
        model.roi_head.mask_head.norm_cfg = None
    model.test_cfg.rpn.nms_pre, model.test_cfg.rpn.max_per_img = 400, 200
    model.test_cfg.rcnn.score_thr = 0.0
    model.test_cfg.rcnn.max_per_img = dets
    return model


def build(model_cfg: dict, seed: int = 0, state_dict: dict | None = None):
    from mmdet.registry import MODELS

    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(model_cfg))
    if state_dict is None:
        model.init_weights()
    else:
        model.load_state_dict(state_dict)
    return model.eval()


def make_sample_batch(h: int, w: int, scale: float = 1.0, seed: int = 0, img: np.ndarray | None = None) -> dict:
    """One pipeline-like batch: a ``(3, h*scale, w*scale)`` uint8 input of an ``h x w`` original image."""
    from mmdet.structures import DetDataSample

    if img is None:
        rng = np.random.default_rng(seed)
        img = rng.integers(0, 256, size=(3, h, w), dtype=np.uint8)
    t = torch.from_numpy(np.ascontiguousarray(img)).float()[None]
    H, W = int(round(h * scale)), int(round(w * scale))
    if (H, W) != (h, w):
        t = torch.nn.functional.interpolate(t, size=(H, W), mode='bilinear', align_corners=False)
    sample = DetDataSample(metainfo=dict(img_id=0, img_shape=(H, W), ori_shape=(h, w),
                                         scale_factor=(W / w, H / h)))
    return dict(inputs=[t[0].round().clamp(0, 255).to(torch.uint8)], data_samples=[sample])


def dense_masks(masks) -> np.ndarray:
    """(N, H, W) bool from a tensor, an RLEMasks or a list of RLEs (non-empty)."""
    if hasattr(masks, 'to_ndarray'):
        return masks.to_ndarray()
    if isinstance(masks, list):  # RLEs (an indexed RLEMasks is a plain list)
        import pycocotools.mask as mask_util

        return mask_util.decode(masks).transpose(2, 0, 1).astype(bool)
    return masks.cpu().numpy().astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pair IoU of two aligned (N, H, W) bool stacks (two empty masks: 1)."""
    inter = (a & b).reshape(len(a), -1).sum(1)
    union = (a | b).reshape(len(a), -1).sum(1)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))
