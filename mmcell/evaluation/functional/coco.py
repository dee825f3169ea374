"""COCO helpers and analyses of mask predictions: the contest AP50, matching, precision/recall, score-threshold
sweeps, and label images as COCO (the class confusion of matched nuclei: :mod:`.classification`).

Everything works on two plain structures, so the same code serves val splits, the synthetic test GT and saved
submissions:

- ground truth as a COCO dict (``images``, ``annotations`` with RLE ``segmentation``, ``categories``), e.g.
  ``DATA_ROOT/test_gt_coco.json`` or :func:`mmcell.datasets.coco_gt.coco_ground_truth` of a dataset;
- predictions as a list in the submission format (:mod:`mmcell.evaluation.submission`).

The contest figure is plain pycocotools' segm AP50 with default ``maxDets`` (:func:`contest_ap50`); the plots of
these analyses are in :mod:`mmcell.visualization`.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy import ndimage

from mmcell.datasets.coco_gt import coco_ground_truth
from mmcell.datasets.metainfo import CLASSES as DEFAULT_CLASSES
from mmcell.datasets.metainfo import CONTEST_MAX_DETS
from mmcell.structures.rle import crop_rle, rle_bytes


def gt_as_results(gt: Mapping, score: float = 1.0) -> list:
    """The GT annotations written as predictions in the submission format (perfect predictions)."""
    return [dict(image_id=a['image_id'], category_id=a['category_id'], bbox=[float(v) for v in a['bbox']],
                 score=float(score), segmentation=dict(size=list(a['segmentation']['size']),
                                                       counts=rle_bytes(a['segmentation'])['counts'].decode()))
            for a in gt['annotations'] if not a.get('iscrowd', 0)]


def contest_ap50(gt: Mapping, results: Sequence[Mapping], max_dets: int = CONTEST_MAX_DETS) -> float:
    """COCO segm AP at IoU 0.5 by plain pycocotools, as the contest computes it (``maxDets`` 1, 10, ``max_dets``).

    Returns 0.0 when there is no prediction.
    """

    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the 12-line summary
        coco_gt = _coco_gt(gt)
        coco_dt = coco_gt.loadRes([dict(r) for r in results])
        ev = COCOeval(coco_gt, coco_dt, iouType='segm')
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(max(ev.stats[1], 0.0))


@dataclass
class Matching:
    """Result of :func:`match_detections`.

    Attributes:
        det_matched: (D,) whether each detection matched a GT.
        det_gt_category: (D,) category of the matched GT (0 when unmatched).
        det_iou: (D,) IoU with the matched GT (best IoU with any GT when unmatched).
        gt_category: (G,) category of each (non-crowd) GT.
        gt_matched_category: (G,) category of the detection that matched it (0 when missed).
    """

    det_matched: np.ndarray
    det_gt_category: np.ndarray
    det_iou: np.ndarray
    gt_category: np.ndarray
    gt_matched_category: np.ndarray


def _coco_gt(gt: Mapping) -> Any:

    coco_gt = COCO()
    coco_gt.dataset = {k: list(v) for k, v in gt.items() if k in ('images', 'annotations', 'categories')}
    coco_gt.createIndex()
    return coco_gt


def match_detections(gt: Mapping, results: Sequence[Mapping], iou_thr: float = 0.5,
                     class_aware: bool = True) -> Matching:
    """COCO's own matching at ``iou_thr`` mask IoU (pycocotools ``COCOeval.evaluateImg``: greedy, best score
    first, one GT per detection), read back from its ``dtMatches`` arrays.

    Args:
        gt: COCO ground truth dict (crowd regions are COCO's "ignore": a detection on one is not a match).
        results: predictions in the submission format (order kept in the output arrays).
        iou_thr: minimum mask IoU of a match.
        class_aware: match only a GT of the same category (False: COCO's ``useCats=0``, for the confusion matrix).
    """

    anns = [a for a in gt['annotations'] if not a.get('iscrowd', 0)]
    gt_index = {a['id']: i for i, a in enumerate(anns)}
    gt_cat = np.array([a['category_id'] for a in anns], np.int64)
    gt_matched_cat = np.zeros(len(anns), np.int64)
    det_matched = np.zeros(len(results), bool)
    det_gt_cat = np.zeros(len(results), np.int64)
    det_iou = np.zeros(len(results))
    if not results or not anns:
        return Matching(det_matched, det_gt_cat, det_iou, gt_cat, gt_matched_cat)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = _coco_gt(gt)
        coco_dt = coco_gt.loadRes([dict(r) for r in results])  # detection ids are 1..D in input order
        ev = COCOeval(coco_gt, coco_dt, iouType='segm')
        ev.params.iouThrs = np.array([float(iou_thr)])
        ev.params.maxDets = [len(results)]
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ['all']
        ev.params.useCats = int(class_aware)
        ev.evaluate()
    for e in ev.evalImgs:
        if e is None:
            continue
        key = (e['image_id'], e['category_id'])
        gts = (ev._gts[key] if class_aware else
               [g for cat in ev.params.catIds for g in ev._gts[e['image_id'], cat]])
        ious = np.asarray(ev.ious.get(key, []), np.float64).reshape(len(e['dtIds']), -1) \
            if len(ev.ious.get(key, [])) else np.zeros((len(e['dtIds']), 0))
        column = {g['id']: j for j, g in enumerate(gts)}
        for row, (dt_id, gt_id, ignored) in enumerate(zip(e['dtIds'], e['dtMatches'][0], e['dtIgnore'][0])):
            d = int(dt_id) - 1
            if gt_id > 0 and not ignored:
                det_matched[d] = True
                det_gt_cat[d] = coco_gt.anns[int(gt_id)]['category_id']
                det_iou[d] = ious[row, column[int(gt_id)]]
                gt_matched_cat[gt_index[int(gt_id)]] = results[d]['category_id']
            else:
                det_iou[d] = float(ious[row].max()) if ious.shape[1] else 0.0
    return Matching(det_matched, det_gt_cat, det_iou, gt_cat, gt_matched_cat)


def score_threshold_sweep(gt: Mapping, results: Sequence[Mapping], thresholds: Iterable[float],
                          max_dets: int = CONTEST_MAX_DETS) -> list:
    """Contest AP50 after dropping detections below each score threshold.

    Returns:
        list of dicts ``score_thr``, ``ap50``, ``num_detections``.
    """
    rows = []
    for thr in thresholds:
        kept = [r for r in results if r['score'] >= thr]
        rows.append(dict(score_thr=float(thr), ap50=contest_ap50(gt, kept, max_dets), num_detections=len(kept)))
    return rows


def per_class_precision_recall(gt: Mapping, results: Sequence[Mapping], iou_thr: float = 0.5,
                               score_thr: float = 0.0, classes: Sequence[str] = DEFAULT_CLASSES) -> list:
    """Per-class TP/FP/FN, precision and recall at ``iou_thr`` for detections scoring at least ``score_thr``.

    Returns:
        one dict per class: ``class``, ``gt``, ``det``, ``tp``, ``fp``, ``fn``, ``precision``, ``recall``.
    """
    kept = [r for r in results if r['score'] >= score_thr]
    m = match_detections(gt, kept, iou_thr, class_aware=True)
    det_cat = np.array([r['category_id'] for r in kept], np.int64)
    rows = []
    for k, name in enumerate(classes, start=1):
        tp = int((m.det_matched & (det_cat == k)).sum())
        det = int((det_cat == k).sum())
        num_gt = int((m.gt_category == k).sum())
        rows.append(dict(**{'class': name}, gt=num_gt, det=det, tp=tp, fp=det - tp, fn=num_gt - tp,
                         precision=tp / det if det else float('nan'),
                         recall=tp / num_gt if num_gt else float('nan')))
    return rows


def format_table(rows: Sequence[Mapping], floatfmt: str = '.4f') -> str:
    """A markdown table of dict rows (same keys)."""
    if not rows:
        return '(empty)'
    keys = list(rows[0])

    def cell(v: Any) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    lines = ['| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)]
    lines += ['| ' + ' | '.join(cell(r[k]) for k in keys) + ' |' for r in rows]
    return '\n'.join(lines)


def label_image_to_coco(ids: np.ndarray, classes: np.ndarray, scores: Optional[Mapping[int, float]] = None,
                        class_names: Sequence[str] = DEFAULT_CLASSES) -> tuple:
    """COCO ground truth (image id 1) and the same instances as results, from a label image + class map.

    For scoring whole-slide outputs (``labels.ome.tif``) or slide ground truth (``*_gt.ome.tif``): instance ``i``
    is ``ids == i`` with class ``classes`` there (1..K); ``scores`` maps ids to scores (default 1).
    """

    height, width = ids.shape
    infos = dict(img_id=1, img_path='', height=height, width=width, instances=[])
    results = []
    boxes = ndimage.find_objects(ids.astype(np.int64))
    for i, box in enumerate(boxes, start=1):
        if box is None:
            continue
        crop = ids[box] == i
        rle = crop_rle(crop, box[1].start, box[0].start, height, width)
        cls = int(np.bincount(classes[box][crop]).argmax())
        infos['instances'].append(dict(mask=dict(size=[height, width], counts=rle['counts'].decode()),
                                       bbox_label=cls - 1))
        results.append(dict(image_id=1, category_id=cls, score=float((scores or {}).get(i, 1.0)),
                            bbox=[float(v) for v in mask_utils.toBbox(rle)],
                            segmentation=dict(size=[height, width], counts=rle['counts'].decode())))

    return coco_ground_truth([infos], class_names), results
