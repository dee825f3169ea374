"""Aggregated Jaccard Index: AJI (Kumar et al., IEEE TMI 2017, the MoNuSeg measure) and AJI+ (Graham et al. 2019).

Definitions follow HoVer-Net's ``get_fast_aji`` / ``get_fast_aji_plus`` (``metrics/stats_utils.py``) exactly,
computed from one contingency table (:func:`.instance_overlap.instance_overlap`) instead of per-instance masks:

- **AJI**: every GT instance is paired with the prediction of highest IoU (``inter / (union + 1e-6)``; ties to the
  lower prediction id) among those it touches; a prediction may serve several GT instances (this over-penalises
  merges: its pixels enter the union once per pairing). AJI = sum of paired intersections / (sum of paired unions
  + areas of unpaired GT + areas of predictions paired with no GT).
- **AJI+**: the same, but GT and predictions are paired one-to-one by maximal summed IoU (Munkres), pairs with IoU
  0 dropped.

Both maps empty: AJI is undefined (0 / 0) and returned as NaN (the runner's mean skips it); one map empty: 0.
"""
from __future__ import annotations

import numpy as np

from mmcell.evaluation.functional.instance_overlap import InstanceOverlap, instance_overlap, max_iou_matching

_EPS = 1.0e-6  # HoVer-Net's pairwise_iou = inter / (union + 1e-6): only decides near-ties


def _aggregate(ov: InstanceOverlap, chosen: np.ndarray) -> float:
    paired_t = np.zeros(len(ov.true_ids), bool)
    paired_p = np.zeros(len(ov.pred_ids), bool)
    paired_t[ov.pair_true[chosen]] = True
    paired_p[ov.pair_pred[chosen]] = True
    inter = ov.inter[chosen].sum()
    union = ov.union[chosen].sum() + ov.true_area[~paired_t].sum() + ov.pred_area[~paired_p].sum()
    return float(inter / union) if union else float('nan')


def aji_from_overlap(ov: InstanceOverlap) -> float:
    """AJI of a precomputed overlap (see the module docstring)."""
    if len(ov.inter) == 0:
        return _aggregate(ov, np.zeros(0, np.int64))
    iou = ov.inter / (ov.union + _EPS)
    # pairs are sorted by GT then prediction: for each GT take the first pair of maximal IoU (lowest pred id)
    order = np.lexsort((ov.pair_pred, -iou, ov.pair_true))
    first = np.ones(len(order), bool)
    first[1:] = ov.pair_true[order][1:] != ov.pair_true[order][:-1]
    return _aggregate(ov, order[first])


def aji_plus_from_overlap(ov: InstanceOverlap) -> float:
    """AJI+ of a precomputed overlap (see the module docstring)."""
    chosen = max_iou_matching(ov.pair_true, ov.pair_pred, ov.inter / (ov.union + _EPS))
    return _aggregate(ov, chosen)


def aji(true: np.ndarray, pred: np.ndarray) -> float:
    """AJI of a predicted label map against the ground-truth label map (0 = background, any integer ids)."""
    return aji_from_overlap(instance_overlap(true, pred))


def aji_plus(true: np.ndarray, pred: np.ndarray) -> float:
    """AJI+ of a predicted label map against the ground-truth label map (0 = background, any integer ids)."""
    return aji_plus_from_overlap(instance_overlap(true, pred))
