"""Nucleus classification as HoVer-Net scores it, and the class confusion matrix of matched nuclei.

HoVer-Net's ``compute_stats.py`` (``run_nuclei_type_stat``, Graham et al. 2019, the CoNSeP / PanNuke / Lizard
classification figures):

- per image, GT and predicted nuclei are paired by their centroids: Munkres (Hungarian) assignment on the full
  Euclidean distance matrix, then the pairs farther apart than ``radius`` (12 px at 40x) are dropped
  (:func:`pair_centroids`); pairs are pooled over the images of the data set;
- detection F1 **F_d** = 2 TP / (2 TP + FP + FN): TP the pairs, FP / FN the unpaired predictions / GT;
- per class c, **F_c** = 2 (TP_c + TN_c) / (2 (TP_c + TN_c) + 2 FP_c + 2 FN_c + FP_d,c + FN_d,c), over the pairs
  where the GT or the prediction is of class c: TP_c both are c, FP_c only the prediction, FN_c only the GT
  (TN_c, neither, is therefore 0, as in HoVer-Net's code); FP_d,c / FN_d,c the unpaired predictions / GT of class c;
- the type accuracy is the fraction of pairs whose classes agree.

Everything here is read from one matrix, :func:`confusion_matrix` (counts of paired nuclei by GT and predicted
class, plus the unpaired ones), so the picture a user looks at and the F1s are the same numbers.
Unlike HoVer-Net, an image without nuclei adds nothing (HoVer-Net inserts a dummy nucleus of type 0 at (0, 0)).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from mmcell.evaluation.functional.instance_overlap import compact_labels

#: centroid distance (px) within which a GT and a predicted nucleus pair: HoVer-Net's 12 px at 40x
CENTROID_RADIUS = 12.0


def label_centroids(label_map: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Ids and centroids of the instances of a label map (0 = background).

    Returns:
        ``(ids, xy)``: the sorted ids (the order of :class:`InstanceOverlap`'s ``true_ids`` / ``pred_ids``) and
        their (N, 2) centres of mass as (x, y) in pixels (pixel centres at integer coordinates).
    """
    label_map = np.asarray(label_map)
    index, ids, area = compact_labels(label_map)
    width = label_map.shape[1] if label_map.ndim == 2 else 1
    fg = np.flatnonzero(index)
    rows, cols = np.divmod(fg, width)
    n = len(ids)
    cy = np.bincount(index[fg], weights=rows, minlength=n + 1)[1:]
    cx = np.bincount(index[fg], weights=cols, minlength=n + 1)[1:]
    area = np.maximum(np.asarray(area, np.float64), 1)
    return ids, np.stack([cx / area, cy / area], axis=1).reshape(n, 2)


def pair_centroids(true_xy: np.ndarray, pred_xy: np.ndarray,
                   radius: float = CENTROID_RADIUS) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HoVer-Net's ``pair_coordinates``: the minimal-total-distance one-to-one pairing of GT and predicted
    centroids, pairs farther apart than ``radius`` dropped.

    Returns:
        ``(paired, unpaired_true, unpaired_pred)``: (P, 2) indices (GT, prediction) and the indices left over.
    """
    true_xy = np.asarray(true_xy, np.float64).reshape(-1, 2)
    pred_xy = np.asarray(pred_xy, np.float64).reshape(-1, 2)
    if len(true_xy) and len(pred_xy):
        dist = cdist(true_xy, pred_xy)
        rows, cols = linear_sum_assignment(dist)
        keep = dist[rows, cols] <= radius
        rows, cols = rows[keep], cols[keep]
    else:
        rows = cols = np.zeros(0, np.int64)
    paired = np.stack([rows, cols], axis=1).astype(np.int64).reshape(-1, 2)
    return (paired, np.setdiff1d(np.arange(len(true_xy)), rows),
            np.setdiff1d(np.arange(len(pred_xy)), cols))


def confusion_matrix(true_classes: np.ndarray, pred_classes: np.ndarray, paired: np.ndarray,
                     unpaired_true: np.ndarray, unpaired_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Class confusion of matched nuclei, with the unmatched ones in an extra row and column.

    Args:
        true_classes, pred_classes: class 1..K of each GT / predicted nucleus.
        paired, unpaired_true, unpaired_pred: a matching (e.g. :func:`pair_centroids`).
        num_classes: K.

    Returns:
        (K + 1, K + 1) int64: ``[g - 1, p - 1]`` counts GT of class g matched by a prediction of class p; the last
        column counts the missed GT of each class, the last row the unmatched predictions (false positives) of each
        predicted class.
    """
    k = int(num_classes)
    tc = np.asarray(true_classes, np.int64).reshape(-1)
    pc = np.asarray(pred_classes, np.int64).reshape(-1)
    for name, cls in (('GT', tc), ('predicted', pc)):
        if cls.size and (cls.min() < 1 or cls.max() > k):
            raise ValueError(f'{name} classes {sorted(set(cls.tolist()) - set(range(1, k + 1)))} are outside '
                             f'1..{k}')
    conf = np.zeros((k + 1, k + 1), np.int64)
    paired = np.asarray(paired, np.int64).reshape(-1, 2)
    np.add.at(conf, (tc[paired[:, 0]] - 1, pc[paired[:, 1]] - 1), 1)
    np.add.at(conf[:, k], tc[np.asarray(unpaired_true, np.int64)] - 1, 1)
    np.add.at(conf[k], pc[np.asarray(unpaired_pred, np.int64)] - 1, 1)
    return conf


def _ratio(num: float, denom: float) -> float:
    return float(num) / denom if denom else float('nan')


def classification_scores(conf: np.ndarray) -> Dict[str, object]:
    """HoVer-Net's F_d, type accuracy and F_c of every class from a :func:`confusion_matrix` (module docstring).

    Returns:
        ``{'f1_d', 'accuracy', 'f1_c': {class 1..K: F_c}}`` (NaN where a denominator is 0).
    """
    conf = np.asarray(conf, np.int64)
    k = conf.shape[0] - 1
    pairs = conf[:k, :k]
    tp_d, fp_d, fn_d = int(pairs.sum()), int(conf[k, :k].sum()), int(conf[:k, k].sum())
    f1_c = {}
    for c in range(k):
        tp = int(pairs[c, c])
        fp, fn = int(pairs[:, c].sum()) - tp, int(pairs[c].sum()) - tp
        f1_c[c + 1] = _ratio(2 * tp, 2 * tp + 2 * fp + 2 * fn + int(conf[k, c]) + int(conf[c, k]))
    return dict(f1_d=_ratio(2 * tp_d, 2 * tp_d + fp_d + fn_d), accuracy=_ratio(np.trace(pairs), tp_d), f1_c=f1_c)


def confusion_rows(conf: np.ndarray, classes: Sequence[str]) -> list:
    """The confusion matrix as table rows (``gt \\ pred``, one column per class, ``(missed)``)."""
    header = ['gt \\ pred', *classes, '(missed)']
    names = [*classes, '(false pos.)']
    return [dict(zip(header, [name, *map(int, row)])) for name, row in zip(names, np.asarray(conf))]
