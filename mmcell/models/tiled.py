"""Tiled (sliding-window) inference for images larger than a tile, with bounded memory.

An image that fits in one tile runs the wrapped detector unchanged (identical results). A larger one is cut
into overlapping tiles at the network-input scale; per tile, backbone + RPN + box head run and only the
detections whose box centre falls in the tile's *core* (the tile minus half the overlap on every inner side)
are kept, so an object crossing a border is taken from the one tile that sees it whole (overlap >= object
size); a final class-wise NMS removes what is left of duplicates. Mask probabilities (28x28) are computed per
tile and pasted once at the original size, as COCO RLE by default: memory is one tile's features plus the
boxes, never N x H x W (a 2500x735 image at 2x with 1000 detections would need 7 GB of dense masks).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from mmcv.ops import batched_nms
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor

from mmcell.structures.tiling import in_core, tile_cores, tile_starts

from .fast_mask_rcnn import detect_boxes, mask_probs_of, paste_instance_masks


@MODELS.register_module()
class TiledDetector(BaseModel):
    """Wrap a two-stage mask detector for tiled inference (see the module docstring).

    Reachable from a config, so ``tools/test.py`` runs it like ``predict.py --tile``::

        model = dict(type='TiledDetector', module=dict(type='MaskRCNN', ...), tile_size=1024, overlap=128)

    Args:
        module: the detector (config or module).
        tile_size: tile side at the network-input scale (after the pipeline's resize).
        overlap: overlap between tiles (>= the largest object at that scale).
        nms_iou: IoU of the final cross-tile class-wise NMS (default: the module's ``test_cfg.rcnn.nms``).
        max_per_img: detections kept per image (default: the module's ``test_cfg.rcnn.max_per_img``).
        mask_format: ``'rle'`` (default, bounded memory) or ``'bitmap'``.
    """

    def __init__(self, module, tile_size: int = 1024, overlap: int = 128, nms_iou: Optional[float] = None,
                 max_per_img: Optional[int] = None, mask_format: str = 'rle') -> None:
        super().__init__()
        self.module = MODELS.build(module) if isinstance(module, dict) else module
        if overlap >= tile_size:
            raise ValueError(f'TiledDetector: overlap {overlap} must be smaller than tile_size {tile_size}')
        self.tile_size, self.overlap, self.nms_iou = int(tile_size), int(overlap), nms_iou
        self.max_per_img, self.mask_format = max_per_img, mask_format

    def forward(self, inputs, data_samples=None, mode: str = 'predict'):
        raise NotImplementedError('TiledDetector supports test_step only')

    @torch.no_grad()
    def test_step(self, data) -> List[DetDataSample]:
        out = []
        for img, sample in zip(data['inputs'], data['data_samples']):
            h, w = img.shape[-2:]
            if h <= self.tile_size and w <= self.tile_size:
                out.append(self.module.test_step(dict(inputs=[img], data_samples=[sample]))[0])
            else:
                out.append(self.predict_tiled(img, sample))
        return out

    def detect_tile(self, img: Tensor, x0: int = 0, y0: int = 0) -> tuple:
        """Detections of one tile in tile pixels: ``(boxes, scores, labels, mask probabilities (n, h, w))``.

        ``x0, y0`` (the tile's position in the image) are not needed by the detector; subclasses may use them.
        """
        det = self.module
        th, tw = img.shape[-2:]
        tile_sample = DetDataSample(metainfo=dict(img_shape=(th, tw), ori_shape=(th, tw), scale_factor=(1.0, 1.0)))
        feats, _, res = detect_boxes(det, img, tile_sample)
        if len(res) == 0:
            return res.bboxes, res.scores, res.labels, res.bboxes.new_zeros((0, 28, 28))
        rois = torch.cat([res.bboxes.new_zeros((len(res), 1)), res.bboxes], 1)
        preds = det.roi_head._mask_forward(feats, rois)['mask_preds']
        return res.bboxes, res.scores, res.labels, mask_probs_of(det.roi_head.mask_head, preds, res.labels)

    def _predict_tile(self, img: Tensor, x0: int, y0: int,
                      core: Tuple[Tuple[float, float], Tuple[float, float]]) -> tuple:
        """Tile detections in image pixels, keeping those whose box centre lies in the tile's core."""
        boxes, scores, labels, probs = self.detect_tile(img, x0, y0)
        boxes = boxes + boxes.new_tensor([x0, y0, x0, y0])
        keep = in_core(boxes, core)
        return boxes[keep], scores[keep], labels[keep], probs[keep]

    def predict_tiled(self, img: Tensor, sample: DetDataSample) -> DetDataSample:
        """Tiled prediction of one pipeline-processed image (``(C, H, W)`` tensor and its sample)."""
        h, w = img.shape[-2:]
        ys, xs = tile_starts(h, self.tile_size, self.overlap), tile_starts(w, self.tile_size, self.overlap)
        ycores, xcores = tile_cores(ys, self.tile_size, h), tile_cores(xs, self.tile_size, w)
        parts = []
        for y0, yc in zip(ys, ycores):
            for x0, xc in zip(xs, xcores):
                crop = img[:, y0:y0 + self.tile_size, x0:x0 + self.tile_size]
                parts.append(self._predict_tile(crop, x0, y0, (xc, yc)))
        boxes = torch.cat([p[0] for p in parts])
        scores = torch.cat([p[1] for p in parts])
        labels = torch.cat([p[2] for p in parts])
        probs = [p[3] for p in parts]
        rcnn_cfg = self.module.roi_head.test_cfg
        max_per_img = self.max_per_img or rcnn_cfg.get('max_per_img', 1000)
        if len(boxes):
            iou = self.nms_iou if self.nms_iou is not None else rcnn_cfg.nms.get('iou_threshold', 0.5)
            _, keep = batched_nms(boxes, scores, labels, dict(type='nms', iou_threshold=float(iou)))
            keep = keep[:max_per_img]
            probs_all = torch.cat(probs)
            boxes, scores, labels, probs_all = boxes[keep], scores[keep], labels[keep], probs_all[keep]
        else:
            probs_all = parts[0][3][:0] if parts else boxes.new_zeros((0, 28, 28))
        ori_h, ori_w = sample.metainfo['ori_shape'][:2]
        boxes = boxes / boxes.new_tensor(sample.metainfo['scale_factor']).repeat(2)
        out = sample.clone()
        results = InstanceData(bboxes=boxes, scores=scores, labels=labels)
        results.masks = paste_instance_masks(probs_all, boxes, ori_h, ori_w, rcnn_cfg.mask_thr_binary,
                                             self.mask_format)
        out.pred_instances = results
        return out
