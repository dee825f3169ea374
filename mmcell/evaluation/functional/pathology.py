"""The pathology figures of a data set from its label images: AJI, AJI+, bPQ / DQ / SQ, mPQ and PQ per class,
detection P/R/F1 at IoU 0.5, and HoVer-Net's F_d, type accuracy, F_c per class and the class confusion matrix.

:func:`image_figures` reduces one image (GT and predicted label maps with the class of each id) to a few numbers
and one small matrix; :func:`summarize_figures` averages or pools them over the data set, following the
published definitions (:mod:`.pq`: PQ and mPQ are means over images, NaN images skipped, as HoVer-Net and
PanNuke average; :mod:`.detection`: counts pooled; :mod:`.classification`: HoVer-Net pools its centroid pairs).
``CellPathologyMetric`` (the runner) and ``tools/analysis_tools/class_confusion.py`` (:func:`coco_figures`, saved
predictions) both go through these two functions.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Optional, Sequence

import numpy as np

from mmcell.evaluation.functional.aji import aji_from_overlap, aji_plus_from_overlap
from mmcell.evaluation.functional.classification import (
    CENTROID_RADIUS,
    classification_scores,
    confusion_matrix,
    label_centroids,
    pair_centroids,
)
from mmcell.evaluation.functional.detection import detection_scores
from mmcell.evaluation.functional.instance_overlap import instance_overlap
from mmcell.evaluation.functional.pq import MATCH_IOU, class_pq, pq_stats
from mmcell.structures.label_image import instances_to_label_map


def image_figures(true_map: np.ndarray, true_cls: np.ndarray, pred_map: np.ndarray, pred_cls: np.ndarray,
                  match_iou: float = MATCH_IOU, num_classes: int = 1,
                  radius: float = CENTROID_RADIUS) -> dict:
    """Every per-image figure :func:`summarize_figures` averages or pools.

    Args:
        true_map, pred_map: label maps with ids 1..N (0 = background).
        true_cls, pred_cls: class 1..K of each id (index 0 unused), as :func:`instances_to_label_map` returns.
        match_iou: the IoU of a PQ / detection match.
        num_classes: K (the size of the confusion matrix; 1 = class-agnostic).
        radius: the centroid distance of HoVer-Net's pairing (px).
    """
    ov = instance_overlap(true_map, pred_map)
    stats = pq_stats(ov, match_iou)
    tc, pc = np.asarray(true_cls)[ov.true_ids], np.asarray(pred_cls)[ov.pred_ids]
    has_gt = len(ov.true_ids) > 0
    k = max(int(num_classes), 1)
    if k == 1:  # class-agnostic: every nucleus is class 1
        tc, pc = np.ones_like(tc), np.ones_like(pc)
    _, true_xy = label_centroids(true_map)
    _, pred_xy = label_centroids(pred_map)
    conf = confusion_matrix(tc, pc, *pair_centroids(true_xy, pred_xy, radius), num_classes=k)
    present = sorted(set(tc.tolist())) if k > 1 else []
    return dict(aji=aji_from_overlap(ov), aji_plus=aji_plus_from_overlap(ov),
                pq=stats.pq if has_gt else float('nan'), dq=stats.dq if has_gt else float('nan'),
                sq=stats.sq if has_gt else float('nan'), tp=stats.tp, fp=stats.fp, fn=stats.fn,
                class_pq=class_pq(ov, tc, pc, present, match_iou), confusion=conf)


def _nanmean(values: Sequence[float]) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float('nan')


def summarize_figures(results: Sequence[dict], num_classes: int = 1) -> dict:
    """Data-set figures from :func:`image_figures` of every image.

    Returns:
        ``aji``, ``aji_plus``, ``pq`` (bPQ), ``dq``, ``sq``, ``precision``, ``recall``, ``f1`` (IoU 0.5),
        ``f1_d`` (HoVer-Net), ``confusion`` (pooled) and, with more than one class, ``mpq``, ``class_pq`` and
        ``accuracy`` / ``f1_c`` (HoVer-Net; ``class_pq`` and ``f1_c`` keyed by class 1..K).
    """
    k = max(int(num_classes), 1)
    tp, fp, fn = (sum(r[key] for r in results) for key in ('tp', 'fp', 'fn'))
    conf = sum((r['confusion'] for r in results), np.zeros((k + 1, k + 1), np.int64))
    hover = classification_scores(conf)
    out = dict(aji=_nanmean([r['aji'] for r in results]), aji_plus=_nanmean([r['aji_plus'] for r in results]),
               pq=_nanmean([r['pq'] for r in results]), dq=_nanmean([r['dq'] for r in results]),
               sq=_nanmean([r['sq'] for r in results]), **detection_scores(tp, fp, fn), f1_d=hover['f1_d'],
               confusion=conf)
    if k > 1:
        class_ids = range(1, k + 1)
        out.update(mpq=_nanmean([_nanmean(list(r['class_pq'].values())) for r in results]),
                   class_pq={c: _nanmean([r['class_pq'].get(c, float('nan')) for r in results]) for c in class_ids},
                   accuracy=hover['accuracy'], f1_c=hover['f1_c'])
    return out


def coco_figures(gt: Mapping, results: Sequence[Mapping], score_thr: float, num_classes: int,
                 match_iou: float = MATCH_IOU, radius: float = CENTROID_RADIUS,
                 image_ids: Optional[Sequence[int]] = None) -> dict:
    """:func:`summarize_figures` of predictions in the submission format against a COCO ground truth.

    Each image's GT and its predictions scoring at least ``score_thr`` are painted into label maps the way
    ``mmcell segment`` and ``CellPathologyMetric`` paint them (:func:`instances_to_label_map`: the higher score wins
    where predictions overlap); every image of ``gt`` is scored (an image without predictions misses its nuclei).

    Args:
        gt: COCO dict (RLE ``segmentation``; crowd annotations ignored), category id K = class K.
        results: the predictions (``image_id``, ``category_id``, ``score``, RLE ``segmentation``).
        score_thr, num_classes, match_iou, radius: see :func:`image_figures`.
        image_ids: only these images.
    """
    by_image = defaultdict(list)
    for r in results:
        by_image[r['image_id']].append(r)
    gt_by_image = defaultdict(list)
    for a in gt['annotations']:
        if not a.get('iscrowd', 0):
            gt_by_image[a['image_id']].append(a)
    wanted = None if image_ids is None else set(image_ids)
    figures = []
    for img in gt['images']:
        if wanted is not None and img['id'] not in wanted:
            continue
        height, width = int(img['height']), int(img['width'])
        anns, dets = gt_by_image[img['id']], by_image[img['id']]
        true_map, true_cls = instances_to_label_map([a['segmentation'] for a in anns], np.ones(len(anns)),
                                                    [a['category_id'] - 1 for a in anns], height, width)
        pred_map, pred_cls = instances_to_label_map([d['segmentation'] for d in dets], [d['score'] for d in dets],
                                                    [d['category_id'] - 1 for d in dets], height, width, score_thr)
        figures.append(image_figures(true_map, true_cls, pred_map, pred_cls, match_iou, num_classes, radius))
    return summarize_figures(figures, num_classes)
