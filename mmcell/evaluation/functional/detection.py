"""Detection precision, recall and F1 of nuclei at IoU 0.5 (the pairing of :mod:`.pq`).

A GT and a predicted instance match when their IoU > 0.5 (one-to-one by construction); unmatched predictions are
false positives, unmatched GT instances false negatives. Precision = TP / (TP + FP), recall = TP / (TP + FN),
F1 = 2 TP / (2 TP + FP + FN) (= PQ's DQ). Over a data set the counts are pooled over images before dividing, so
crowded images weigh by their nuclei. A ratio with a zero denominator is NaN.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from mmcell.evaluation.functional.instance_overlap import InstanceOverlap, instance_overlap
from mmcell.evaluation.functional.pq import MATCH_IOU, PQStats, pq_stats


def _ratio(num: float, denom: float) -> float:
    return num / denom if denom else float('nan')


def detection_scores(tp: int, fp: int, fn: int) -> Dict[str, float]:
    """``{'precision', 'recall', 'f1'}`` from pooled counts."""
    return dict(precision=_ratio(tp, tp + fp), recall=_ratio(tp, tp + fn), f1=_ratio(2 * tp, 2 * tp + fp + fn))


def detection_counts(ov: InstanceOverlap, match_iou: float = MATCH_IOU) -> PQStats:
    """TP/FP/FN of one image (see the module docstring)."""
    return pq_stats(ov, match_iou)


def detection_f1(true: np.ndarray, pred: np.ndarray, match_iou: float = MATCH_IOU) -> Dict[str, float]:
    """Precision, recall and F1 of one image's label maps (0 = background)."""
    stats = detection_counts(instance_overlap(true, pred), match_iou)
    return detection_scores(stats.tp, stats.fp, stats.fn)
