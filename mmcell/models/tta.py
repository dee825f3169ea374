"""Test-time augmentation for Mask R-CNN with masks (mmdet 3.3's ``DetTTAModel`` refuses instance masks).

Two stages per image:

1. Every view (scales from the ``tta_pipeline``'s ``TestTimeAug`` x flips x 90-degree rotations done here on
   the image tensor) runs backbone, RPN and box head; boxes are mapped back to original pixels and fused
   (weighted box fusion with score voting, :func:`mmcell.models.fusion.fuse_boxes`).
2. The fused boxes are mapped into every view, the mask head predicts ``28x28`` probabilities there, these
   are mapped back (flip / rotate the grid, which is exact for axis-aligned boxes), averaged, and pasted
   once at the original size (:mod:`mmcell.models.fast_ops`).

Config::

    tta_model = dict(type='CellTTAModel', flips=['none', 'horizontal', 'vertical'], rotations=[0, 1],
                     tta_cfg=dict(iou_thr=0.55, max_per_img=1000, mask_thr_binary=0.5, mask_format='bitmap'))
    tta_pipeline = [LoadCellImage, dict(type='TestTimeAug', transforms=[[Resize(scale_factor=s) ...],
                    [PackDetInputs(meta_keys=(..., 'scale_factor'))]])]

``tools/test.py --tta``, ``tools/predict.py --tta`` and ``mmcell segment --tta`` all wrap the model through
:func:`mmcell.apis.inference_config` (the config's ``tta_model``, and ``tta_pipeline`` unless scales are given;
:func:`tta_pipeline_of` derives a multi-scale pipeline from a test pipeline). A plain test pipeline works as well.
"""
from __future__ import annotations

import copy
import itertools
from typing import List, Sequence, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData
from torch import Tensor

from .fast_mask_rcnn import detect_boxes, mask_probs_of, paste_instance_masks
from .fusion import fuse_boxes

FLIPS = {'none': (False, False), 'horizontal': (True, False), 'vertical': (False, True),
         'diagonal': (True, True)}


def augment_image(img: Tensor, hflip: bool, vflip: bool, rot: int) -> Tensor:
    """``(C, H, W)`` image: flip, then rotate by ``rot`` x 90 degrees (``torch.rot90`` on H, W)."""
    if hflip:
        img = img.flip(-1)
    if vflip:
        img = img.flip(-2)
    return torch.rot90(img, rot, dims=(-2, -1)) if rot % 4 else img


def _rot90_boxes(boxes: Tensor, width: float) -> Tensor:
    """Boxes after one ``torch.rot90(k=1)`` of an image ``width`` px wide: (x, y) -> (y, width - x)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([y1, width - x2, y2, width - x1], -1)


def augment_boxes(boxes: Tensor, height: float, width: float, hflip: bool, vflip: bool, rot: int) -> Tensor:
    """Map xyxy boxes of an ``height x width`` image into the augmented image (same order as the image)."""
    boxes = boxes.clone()
    if hflip:
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    if vflip:
        boxes[:, [1, 3]] = height - boxes[:, [3, 1]]
    h, w = height, width
    for _ in range(rot % 4):
        boxes = _rot90_boxes(boxes, w)
        h, w = w, h
    return boxes


def deaugment_boxes(boxes: Tensor, height: float, width: float, hflip: bool, vflip: bool, rot: int) -> Tensor:
    """Inverse of :func:`augment_boxes`; ``height x width`` is the size *before* augmentation."""
    # rotating back by k = rotating forward by 4 - k in the rotated frame
    k = rot % 4
    if k:
        ah, aw = (width, height) if k % 2 else (height, width)  # augmented frame size
        h, w = ah, aw
        for _ in range(4 - k):
            boxes = _rot90_boxes(boxes, w)
            h, w = w, h
    boxes = boxes.clone()
    if vflip:
        boxes[:, [1, 3]] = height - boxes[:, [3, 1]]
    if hflip:
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    return boxes


def deaugment_mask_grids(grids: Tensor, hflip: bool, vflip: bool, rot: int) -> Tensor:
    """``(N, h, w)`` mask grids predicted in augmented boxes -> grids in the original boxes."""
    if rot % 4:
        grids = torch.rot90(grids, -rot, dims=(-2, -1))
    if vflip:
        grids = grids.flip(-2)
    if hflip:
        grids = grids.flip(-1)
    return grids


@MODELS.register_module()
class CellTTAModel(BaseTTAModel):
    """Mask-aware TTA wrapper around a two-stage mask detector (Mask R-CNN and its fast variant).

    Args:
        module: the detector (config or module).
        flips: any of ``'none'``, ``'horizontal'``, ``'vertical'``, ``'diagonal'``.
        rotations: multiples of 90 degrees, e.g. ``[0, 1, 2, 3]``.
        tta_cfg: ``iou_thr`` (box fusion, 0.55), ``max_per_img`` and ``mask_thr_binary`` (default: the
            detector's ``test_cfg.rcnn``), ``score_thr`` (0), ``mask_format`` (``'bitmap'`` or ``'rle'``).
        data_preprocessor: unused (each view goes through the module's own preprocessor).
    """

    def __init__(self, module, flips: Sequence[str] = ('none', 'horizontal'), rotations: Sequence[int] = (0, ),
                 tta_cfg: dict | None = None, data_preprocessor=None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        bad = [f for f in flips if f not in FLIPS]
        if bad or not flips:
            raise ValueError(f'CellTTAModel: flips must be among {sorted(FLIPS)}, got {list(flips)}')
        self.geoms = [(*FLIPS[f], int(r) % 4) for f, r in itertools.product(flips, rotations)]
        # limits and thresholds default to the wrapped detector's test_cfg.rcnn (their one home)
        rcnn = getattr(getattr(self.module, 'roi_head', None), 'test_cfg', None) or {}
        cfg = dict(iou_thr=0.55, max_per_img=rcnn.get('max_per_img', 1000), score_thr=0.0,
                   mask_thr_binary=rcnn.get('mask_thr_binary', 0.5), mask_format='bitmap')
        cfg.update({k: v for k, v in (tta_cfg or {}).items() if v is not None})
        self.tta_cfg = cfg

    def merge_preds(self, data_samples_list):  # the work happens in test_step (masks need the features)
        raise NotImplementedError('CellTTAModel merges inside test_step')

    @staticmethod
    def _views_per_image(data) -> List[List[Tuple[Tensor, DetDataSample]]]:
        """Normalise a plain batch or a ``TestTimeAug`` batch to per-image lists of (input, sample) views."""
        inputs, samples = data['inputs'], data['data_samples']
        if len(inputs) and isinstance(inputs[0], (list, tuple)):  # TestTimeAug: [view][image]
            return [[(inputs[v][i], samples[v][i]) for v in range(len(inputs))] for i in range(len(inputs[0]))]
        return [[(img, s)] for img, s in zip(inputs, samples)]

    @torch.no_grad()
    def test_step(self, data) -> List[DetDataSample]:
        return [self.predict_views(views) for views in self._views_per_image(data)]

    def _run_view(self, img: Tensor, sample: DetDataSample, geom) -> tuple:
        """Features and de-augmented detections of one view."""
        det = self.module
        hflip, vflip, rot = geom
        aug_sample = sample.clone()
        h, w = sample.metainfo['img_shape'][:2]
        aug_img = augment_image(img, hflip, vflip, rot)
        aug_sample.set_metainfo(dict(img_shape=tuple(aug_img.shape[-2:])))
        feats, aug_sample, res = detect_boxes(det, aug_img, aug_sample)
        meta = aug_sample.metainfo
        boxes = deaugment_boxes(res.bboxes, h, w, hflip, vflip, rot)
        boxes = self._undo_pipeline_flip(boxes, sample.metainfo, h, w)
        scale = boxes.new_tensor(sample.metainfo['scale_factor']).repeat(2)
        return feats, meta, boxes / scale, res.scores, res.labels

    @staticmethod
    def _undo_pipeline_flip(boxes: Tensor, meta: dict, h: int, w: int, inverse: bool = True) -> Tensor:
        """Views flipped by a ``RandomFlip`` in the tta_pipeline (mmdet style) are flipped back too."""
        if not meta.get('flip', False):
            return boxes
        direction = meta.get('flip_direction', 'horizontal')
        hflip, vflip = FLIPS.get(direction, (True, False))
        return augment_boxes(boxes, h, w, hflip, vflip, 0)  # a flip is its own inverse

    def predict_views(self, views: List[Tuple[Tensor, DetDataSample]]) -> DetDataSample:
        """TTA prediction of one image from its scale views (see the module docstring)."""
        det = self.module
        cfg = self.tta_cfg
        runs = []
        for img, sample in views:
            for geom in self.geoms:
                runs.append((sample, geom, *self._run_view(img, sample, geom)))
        num_sources = len(runs)
        bboxes = torch.cat([r[4] for r in runs])
        scores = torch.cat([r[5] for r in runs])
        labels = torch.cat([r[6] for r in runs])
        sources = torch.cat([torch.full((len(r[4]), ), i, dtype=torch.long) for i, r in enumerate(runs)])
        fused = fuse_boxes(bboxes, scores, labels, sources, num_sources, iou_thr=cfg['iou_thr'])
        keep = fused['scores'] >= cfg['score_thr']
        f_boxes, f_scores, f_labels = (fused['bboxes'][keep][:cfg['max_per_img']],
                                       fused['scores'][keep][:cfg['max_per_img']],
                                       fused['labels'][keep][:cfg['max_per_img']])
        ori_h, ori_w = views[0][1].metainfo['ori_shape'][:2]
        out = views[0][1].clone()
        results = InstanceData(bboxes=f_boxes, scores=f_scores, labels=f_labels)
        if len(f_boxes) == 0 or not det.with_mask:
            if det.with_mask:
                results.masks = (torch.zeros((0, ori_h, ori_w), dtype=torch.bool)
                                 if cfg['mask_format'] == 'bitmap' else [])
            out.pred_instances = results
            return out
        prob_sum = None
        for sample, geom, feats, *_ in runs:
            h, w = sample.metainfo['img_shape'][:2]
            scale = f_boxes.new_tensor(sample.metainfo['scale_factor']).repeat(2)
            boxes = self._undo_pipeline_flip(f_boxes * scale, sample.metainfo, h, w)
            boxes = augment_boxes(boxes, h, w, *geom)
            preds = det.roi_head._mask_forward(feats, torch.cat([boxes.new_zeros((len(boxes), 1)), boxes], 1))
            probs = mask_probs_of(det.roi_head.mask_head, preds['mask_preds'], f_labels)
            probs = deaugment_mask_grids(probs, *geom)
            if sample.metainfo.get('flip', False):
                hf, vf = FLIPS.get(sample.metainfo.get('flip_direction', 'horizontal'), (True, False))
                probs = deaugment_mask_grids(probs, hf, vf, 0)
            prob_sum = probs if prob_sum is None else prob_sum + probs
        results.masks = paste_instance_masks(prob_sum / len(runs), f_boxes, ori_h, ori_w, cfg['mask_thr_binary'],
                                             cfg['mask_format'])
        out.pred_instances = results
        return out


def tta_pipeline_of(test_pipeline: Sequence[dict], scales: Sequence[float] = (1.0, )) -> List[dict]:
    """Turn a test pipeline into a ``tta_pipeline`` whose views are the ``Resize`` at several scales.

    Transforms before the (first) ``Resize`` load the image once; ``TestTimeAug`` then branches over the
    scaled resizes and applies the rest (``PackDetInputs``) to every view. Flips and rotations are done by
    :class:`CellTTAModel` on tensors, so the pipeline stays free of them.

    Args:
        test_pipeline: a config's test pipeline containing one ``Resize`` (``scale`` or ``scale_factor``).
        scales: multipliers of that resize, e.g. ``(1.0, 1.25, 1.5)``.
    """
    steps = [dict(s) for s in test_pipeline]
    idx = next((i for i, s in enumerate(steps) if s.get('type') in ('Resize', 'mmdet.Resize')), None)
    if idx is None:
        raise ValueError('tta_pipeline_of: the test pipeline has no Resize to scale')
    resize = steps[idx]
    variants = []
    for s in scales:
        r = copy.deepcopy(resize)
        if r.get('scale') is not None:
            scale = r['scale']
            r['scale'] = (int(round(scale * s)) if isinstance(scale, (int, float))
                          else tuple(int(round(v * s)) for v in scale))
        else:
            r['scale_factor'] = float(r.get('scale_factor', 1.0)) * float(s)
        variants.append(r)
    return steps[:idx] + [dict(type='TestTimeAug', transforms=[variants] + [[t] for t in steps[idx + 1:]])]
