"""Pairwise overlaps of two instance label maps in one pass: the contingency table the pathology metrics share.

HoVer-Net's reference metrics (``metrics/stats_utils.py``: ``get_fast_aji``, ``get_fast_aji_plus``,
``get_fast_pq``) build one full-image mask per instance and loop over instances; here the intersections of every
(ground truth, prediction) pair come from one ``np.bincount`` over the pixels where both maps are non-zero (or
``np.unique`` of the pair codes when the dense table would be large), so the cost is O(pixels), not
O(instances x pixels). Label ids may be any non-negative integers (non-contiguous, > 255); 0 is background.
"""
from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: above this many (GT + 1) x (prediction + 1) cells the pair table is built sparsely (np.unique) instead
DENSE_TABLE_LIMIT = 1 << 24


class InstanceOverlap(NamedTuple):
    """The overlap of a ground-truth and a predicted label map.

    Attributes:
        true_ids, pred_ids: the original label ids, index ``i`` = instance ``i`` (sorted).
        true_area, pred_area: pixels per instance.
        pair_true, pair_pred: instance indices of every overlapping (GT, prediction) pair, sorted by
            (GT, prediction).
        inter: pixels of each pair's intersection.
        union: pixels of each pair's union.
    """
    true_ids: np.ndarray
    pred_ids: np.ndarray
    true_area: np.ndarray
    pred_area: np.ndarray
    pair_true: np.ndarray
    pair_pred: np.ndarray
    inter: np.ndarray
    union: np.ndarray

    @property
    def iou(self) -> np.ndarray:
        """IoU of every overlapping pair."""
        return self.inter / self.union


def compact_labels(labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relabel a label map to ``0..N`` (``0`` background) preserving the order of ids.

    Returns:
        ``(index, ids, area)``: the flat map of instance index + 1 (0 = background), the sorted original ids and
        the area of each instance.
    """
    flat = np.asarray(labels).ravel()
    if flat.dtype.kind == 'f':
        if not np.isfinite(flat).all() or (flat != np.round(flat)).any():
            raise ValueError('label maps must hold integer ids')
        flat = flat.astype(np.int64)
    if flat.dtype.kind not in 'iub':
        raise ValueError(f'label maps must hold integer ids, got dtype {flat.dtype}')
    if flat.size and flat.min() < 0:
        raise ValueError('label maps must hold non-negative ids')
    top = int(flat.max()) if flat.size else 0
    if top < 4 * flat.size + 1024:  # small ids: a lookup table (O(pixels)) instead of sorting
        area_all = np.bincount(flat, minlength=top + 1)
        ids = np.flatnonzero(area_all[1:]) + 1
        lut = np.zeros(top + 1, np.int64)
        lut[ids] = np.arange(1, len(ids) + 1)
        return lut[flat], ids, area_all[ids]
    ids, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if len(ids) and ids[0] == 0:
        return inverse.reshape(-1), ids[1:], counts[1:]
    return inverse.reshape(-1) + 1, ids, counts


def instance_overlap(true: np.ndarray, pred: np.ndarray) -> InstanceOverlap:
    """Intersections and unions of every overlapping (GT, prediction) instance pair.

    Args:
        true: (H, W) ground-truth label map (0 = background).
        pred: (H, W) predicted label map, same shape.

    Raises:
        ValueError: the shapes differ or a map does not hold non-negative integer ids.
    """
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(f'ground truth {true.shape} and prediction {pred.shape} label maps differ in shape')
    t, true_ids, true_area = compact_labels(true)
    p, pred_ids, pred_area = compact_labels(pred)
    n_t, n_p = len(true_ids), len(pred_ids)
    both = (t > 0) & (p > 0)
    codes = (t[both] - 1) * n_p + (p[both] - 1)
    if n_t * n_p <= DENSE_TABLE_LIMIT:
        table = np.bincount(codes, minlength=n_t * n_p)
        pairs = np.flatnonzero(table)
        inter = table[pairs]
    else:
        pairs, inter = np.unique(codes, return_counts=True)
    pair_true, pair_pred = pairs // max(n_p, 1), pairs % max(n_p, 1)
    union = true_area[pair_true] + pred_area[pair_pred] - inter
    return InstanceOverlap(true_ids, pred_ids, true_area.astype(np.int64), pred_area.astype(np.int64),
                           pair_true.astype(np.int64), pair_pred.astype(np.int64), inter.astype(np.int64),
                           union.astype(np.int64))


def max_iou_matching(pair_true: np.ndarray, pair_pred: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Maximal unique pairing (Munkres, maximising the summed IoU), solved per connected group of overlapping
    instances: the optimum of the full matrix, without ever building a dense N x M matrix.

    Returns:
        Indices into the pair arrays of the chosen pairs.
    """

    if len(iou) == 0:
        return np.zeros(0, np.int64)
    n_t, n_p = int(pair_true.max()) + 1, int(pair_pred.max()) + 1
    graph = coo_matrix((np.ones(len(iou)), (pair_true, pair_pred + n_t)), shape=(n_t + n_p, n_t + n_p))
    _, comp = connected_components(graph, directed=False)
    pair_comp = comp[pair_true]
    size = np.bincount(pair_comp)
    chosen = [np.flatnonzero(size[pair_comp] == 1)]  # a lone pair is its own optimum
    multi = np.flatnonzero(size[pair_comp] > 1)
    if len(multi):
        order = multi[np.argsort(pair_comp[multi], kind='stable')]
        bounds = np.flatnonzero(np.diff(pair_comp[order])) + 1
        for group in np.split(order, bounds):
            rows, row_idx = np.unique(pair_true[group], return_inverse=True)
            cols, col_idx = np.unique(pair_pred[group], return_inverse=True)
            cost = np.zeros((len(rows), len(cols)))
            cost[row_idx, col_idx] = iou[group]
            lookup = np.full((len(rows), len(cols)), -1, np.int64)
            lookup[row_idx, col_idx] = group
            r, c = linear_sum_assignment(-cost)
            picked = lookup[r, c]
            chosen.append(picked[picked >= 0])
    return np.sort(np.concatenate(chosen))
