"""Fusing detections of several views (TTA) or models (ensembles): weighted box fusion and mask voting."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
from mmcv.ops import batched_nms
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData
from torch import Tensor

from mmcell.models.fast_ops import RLEMasks
from mmcell.structures.rle import crop_rle, masks_to_rles


def cluster_detections(bboxes: Tensor, scores: Tensor, labels: Tensor, iou_thr: float) -> Tuple[Tensor, Tensor]:
    """Group detections of the same class around NMS survivors.

    Args:
        bboxes: ``(N, 4)`` xyxy boxes (all views/models, one frame).
        scores: ``(N,)``.
        labels: ``(N,)``.
        iou_thr: box IoU that joins a detection to a kept one.

    Returns:
        ``(keep, cluster)``: indices of the cluster heads (by descending score) and, for every detection,
        the position in ``keep`` of its cluster (each detection joins the head it overlaps most).
    """

    if len(bboxes) == 0:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    _, keep = batched_nms(bboxes.float(), scores.float(), labels, dict(type='nms', iou_threshold=iou_thr))
    iou = bbox_overlaps(bboxes.float(), bboxes[keep].float())
    iou[labels[:, None] != labels[keep][None, :]] = -1
    cluster = iou.argmax(1)
    cluster[keep] = torch.arange(len(keep))  # a head always belongs to its own cluster
    return keep, cluster


def fuse_boxes(bboxes: Tensor, scores: Tensor, labels: Tensor, sources: Tensor, num_sources: int,
               iou_thr: float = 0.55, weights: Optional[Sequence[float]] = None) -> dict:
    """Weighted box fusion over sources (views or models).

    A cluster's box is the score x source-weight weighted mean of its members; its score is the
    source-weighted mean over *all* sources of each source's best member score (a source that missed
    the object contributes 0: voting), so objects found by every source keep their score.

    Args:
        bboxes, scores, labels: concatenated detections of all sources, in one frame.
        sources: ``(N,)`` source index of each detection.
        num_sources: number of sources (including ones with no detection).
        iou_thr: clustering IoU.
        weights: per-source weights (default equal).

    Returns:
        dict with ``bboxes``, ``scores``, ``labels`` (fused, sorted by score) and ``members`` (for every fused
        detection, a ``LongTensor`` of the member indices).
    """
    w = torch.ones(num_sources) if weights is None else torch.as_tensor(list(weights), dtype=torch.float32)
    if len(bboxes) == 0:
        return dict(bboxes=bboxes.new_zeros((0, 4)), scores=scores.new_zeros(0), labels=labels.new_zeros(0),
                    members=[])
    keep, cluster = cluster_detections(bboxes, scores, labels, iou_thr)
    k = len(keep)
    sw = scores.float() * w[sources]
    box_sum = torch.zeros((k, 4)).index_add_(0, cluster, bboxes.float() * sw[:, None])
    weight_sum = torch.zeros(k).index_add_(0, cluster, sw)
    fused_boxes = box_sum / weight_sum.clamp(min=1e-12)[:, None]
    # zero-score clusters: fall back to the head's box
    zero = weight_sum <= 1e-12
    fused_boxes[zero] = bboxes[keep][zero].float()
    best = torch.zeros(k * num_sources).scatter_reduce_(0, cluster * num_sources + sources, scores.float(),
                                                        reduce='amax', include_self=True)
    fused_scores = (best.view(k, num_sources) * w[None]).sum(1) / w.sum()
    order = torch.argsort(fused_scores, descending=True)
    members_sorted = torch.argsort(cluster, stable=True)
    counts = torch.bincount(cluster, minlength=k)
    groups = list(members_sorted.split(counts.tolist()))
    return dict(bboxes=fused_boxes[order].to(bboxes.dtype), scores=fused_scores[order].to(scores.dtype),
                labels=labels[keep][order], members=[groups[i] for i in order.tolist()])


def vote_masks(masks: Sequence[dict], member_groups: Sequence[Tensor], member_weights: Tensor, img_h: int,
               img_w: int, vote_thr: float = 0.5) -> List[dict]:
    """Mask voting: a fused instance's pixel is on where members holding >= ``vote_thr`` of its weight agree.

    Args:
        masks: COCO RLEs of all detections (``size == [img_h, img_w]``).
        member_groups: per fused instance, indices of its members in ``masks``.
        member_weights: ``(N,)`` weight of every detection (e.g. source weight x score).
        vote_thr: share of the cluster weight needed.

    Returns:
        one RLE per fused instance. Members are decoded only inside the cluster's bounding region.
    """
    out = []
    boxes = mask_util.toBbox(list(masks)) if len(masks) else np.zeros((0, 4))
    for group in member_groups:
        idx = group.tolist()
        if len(idx) == 1:
            out.append(masks[idx[0]])
            continue
        b = boxes[idx]
        x0, y0 = int(np.floor(b[:, 0].min())), int(np.floor(b[:, 1].min()))
        x1, y1 = int(np.ceil((b[:, 0] + b[:, 2]).max())), int(np.ceil((b[:, 1] + b[:, 3]).max()))
        decoded = mask_util.decode([masks[i] for i in idx])[y0:y1, x0:x1].astype(np.float32)
        wts = member_weights[idx].numpy().astype(np.float32)
        votes = decoded @ wts if decoded.ndim == 3 else decoded * wts[0]
        crop = votes >= vote_thr * max(float(wts.sum()), 1e-12)
        out.append(crop_rle(crop, x0, y0, img_h, img_w))
    return out


def fuse_instances(preds: Sequence, weights: Optional[Sequence[float]], height: int, width: int,
                   iou_thr: float = 0.55, vote_thr: float = 0.5, max_per_img: int = 1000):
    """Fuse the instances several models predicted for one image (weighted box fusion + mask voting).

    Args:
        preds: per model an ``InstanceData`` with ``bboxes``, ``scores``, ``labels`` and ``masks`` (dense or RLE)
            in the same original image of ``height x width``.
        weights: per-model weights (default equal).
        iou_thr: box IoU that joins instances of the same class into one.
        vote_thr: share of a cluster's weight (model weight x score) a pixel needs to be in the fused mask.
        max_per_img: instances kept, best fused score first.

    Returns:
        ``InstanceData`` with fused ``bboxes``, ``scores`` (source-weighted mean of each model's best score:
        an instance found by one model of two keeps half its score), ``labels`` and ``masks`` (``RLEMasks``).
    """


    num = len(preds)
    w = torch.ones(num) if weights is None else torch.as_tensor(list(weights), dtype=torch.float32)
    if len(w) != num:
        raise ValueError(f'{len(w)} weights for {num} models')
    rles: List[dict] = []
    for p in preds:
        masks = p.masks
        if isinstance(masks, (list, tuple)):
            rles += list(masks)
        elif len(p):
            rles += masks_to_rles(masks, height, width)
    bboxes = torch.cat([p.bboxes.float().cpu() for p in preds]) if num else torch.zeros((0, 4))
    scores = torch.cat([p.scores.float().cpu() for p in preds]) if num else torch.zeros(0)
    labels = torch.cat([p.labels.long().cpu() for p in preds]) if num else torch.zeros(0, dtype=torch.long)
    sources = torch.cat([torch.full((len(p), ), i, dtype=torch.long) for i, p in enumerate(preds)])
    fused = fuse_boxes(bboxes, scores, labels, sources, num, iou_thr=iou_thr, weights=w)
    k = min(len(fused['scores']), max_per_img)
    members = fused['members'][:k]
    masks = vote_masks(rles, members, w[sources] * scores, height, width, vote_thr) if k else []
    return InstanceData(bboxes=fused['bboxes'][:k], scores=fused['scores'][:k], labels=fused['labels'][:k],
                        masks=RLEMasks(masks, height, width))
