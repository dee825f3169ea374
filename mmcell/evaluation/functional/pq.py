"""Panoptic quality for nuclei: PQ = DQ x SQ (Kirillov et al. 2019, as HoVer-Net and PanNuke compute it).

Per image, following HoVer-Net's ``get_fast_pq`` exactly (from one contingency table, see
:mod:`.instance_overlap`):

- a GT and a predicted instance are a pair (true positive) when their IoU > ``match_iou`` (0.5). Above 0.5 such
  pairs are unique by construction; below it they come from a maximal-IoU one-to-one assignment (Munkres);
- DQ = TP / (TP + FP/2 + FN/2) (the detection F1), SQ = summed IoU of the pairs / (TP + 1e-6), PQ = DQ x SQ.
  No GT and no prediction: DQ, SQ and PQ are NaN (HoVer-Net divides by zero).

Multi-class (PanNuke's ``run.py``): the PQ of class k is the PQ of the class-k GT instances against the class-k
predictions; it is NaN on an image without class-k GT (skipped from every mean); the image's **mPQ** is the mean
of its classes' PQ (NaN skipped), and the data set's mPQ / binary PQ (**bPQ**, all classes merged, NaN on images
without GT) are means over images.
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Sequence

import numpy as np

from mmcell.evaluation.functional.instance_overlap import InstanceOverlap, instance_overlap, max_iou_matching

#: IoU above which a GT and a predicted instance are a true positive (PQ, DQ, detection F1)
MATCH_IOU = 0.5


class PQStats(NamedTuple):
    """The counts behind DQ/SQ/PQ of one image (or one class of one image)."""
    tp: int
    fp: int
    fn: int
    iou_sum: float

    @property
    def dq(self) -> float:
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        return self.tp / denom if denom else float('nan')

    @property
    def sq(self) -> float:
        if not (self.tp or self.fp or self.fn):
            return float('nan')
        return self.iou_sum / (self.tp + 1.0e-6)

    @property
    def pq(self) -> float:
        return self.dq * self.sq


def matched_pairs(ov: InstanceOverlap, match_iou: float = MATCH_IOU,
                  keep: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices of the true-positive pairs: IoU > ``match_iou``, one-to-one.

    Args:
        ov: the overlap of the two maps.
        match_iou: the IoU threshold (strict, as in HoVer-Net).
        keep: optional boolean mask of the pairs allowed to match (e.g. same class).
    """
    iou = ov.iou
    allowed = iou > match_iou if keep is None else (iou > match_iou) & keep
    candidates = np.flatnonzero(allowed)
    if match_iou >= 0.5:  # IoU > 0.5 pairs are unique and maximal
        return candidates
    chosen = max_iou_matching(ov.pair_true[candidates], ov.pair_pred[candidates], iou[candidates])
    return candidates[chosen]


def pq_stats(ov: InstanceOverlap, match_iou: float = MATCH_IOU, true_mask: Optional[np.ndarray] = None,
             pred_mask: Optional[np.ndarray] = None) -> PQStats:
    """TP/FP/FN and summed IoU, optionally restricted to subsets of the instances (e.g. one class).

    Args:
        ov: the overlap of the two maps.
        match_iou: see :func:`matched_pairs`.
        true_mask, pred_mask: boolean per GT / predicted instance; None = all.
    """
    true_mask = np.ones(len(ov.true_ids), bool) if true_mask is None else true_mask
    pred_mask = np.ones(len(ov.pred_ids), bool) if pred_mask is None else pred_mask
    keep = true_mask[ov.pair_true] & pred_mask[ov.pair_pred]
    pairs = matched_pairs(ov, match_iou, keep)
    tp = len(pairs)
    return PQStats(tp=tp, fp=int(pred_mask.sum()) - tp, fn=int(true_mask.sum()) - tp,
                   iou_sum=float(ov.iou[pairs].sum()))


def panoptic_quality(true: np.ndarray, pred: np.ndarray, match_iou: float = MATCH_IOU) -> Dict[str, float]:
    """Binary DQ, SQ and PQ of one image: ``{'dq', 'sq', 'pq'}`` (label maps, 0 = background)."""
    stats = pq_stats(instance_overlap(true, pred), match_iou)
    return dict(dq=stats.dq, sq=stats.sq, pq=stats.pq)


def class_pq(ov: InstanceOverlap, true_classes: np.ndarray, pred_classes: np.ndarray,
             class_ids: Sequence[int], match_iou: float = MATCH_IOU) -> Dict[int, float]:
    """PQ of each class on one image (NaN where the image has no GT of that class), PanNuke's rule.

    Args:
        ov: the overlap of the two maps.
        true_classes, pred_classes: class of each GT / predicted instance (aligned with ``ov.true_ids`` /
            ``ov.pred_ids``).
        class_ids: the classes to report.
    """
    result = {}
    for k in class_ids:
        t, p = true_classes == k, pred_classes == k
        result[k] = pq_stats(ov, match_iou, t, p).pq if t.any() else float('nan')
    return result


def multiclass_pq(true: np.ndarray, pred: np.ndarray, true_class_of: Dict[int, int],
                  pred_class_of: Dict[int, int], class_ids: Sequence[int],
                  match_iou: float = MATCH_IOU) -> Dict[str, object]:
    """Binary PQ, per-class PQ and mPQ (mean of the classes with GT) of one image.

    Args:
        true, pred: label maps.
        true_class_of, pred_class_of: label id -> class id.
        class_ids: the classes.

    Returns:
        ``{'pq': binary PQ, 'class_pq': {k: PQ}, 'mpq': mean of the non-NaN class PQs (NaN if none)}``.
    """
    ov = instance_overlap(true, pred)
    tc = np.array([true_class_of[int(i)] for i in ov.true_ids], np.int64)
    pc = np.array([pred_class_of[int(i)] for i in ov.pred_ids], np.int64)
    per_class = class_pq(ov, tc, pc, class_ids, match_iou)
    values = [v for v in per_class.values() if not np.isnan(v)]
    return dict(pq=pq_stats(ov, match_iou).pq if len(ov.true_ids) else float('nan'), class_pq=per_class,
                mpq=float(np.mean(values)) if values else float('nan'))
