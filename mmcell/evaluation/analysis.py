"""Matching, precision/recall, class confusion and score-threshold analyses of mask predictions.

Everything works on two plain structures, so the same code serves val splits, the synthetic test GT and saved
submissions:

- ground truth as a COCO dict (``images``, ``annotations`` with RLE ``segmentation``, ``categories``), e.g.
  ``DATA_ROOT/test_gt_coco.json`` or :func:`mmcell.datasets.coco_gt.coco_ground_truth` of a dataset;
- predictions as a list in the submission format (:mod:`mmcell.evaluation.submission`).

The contest figure is plain pycocotools' segm AP50 with default ``maxDets`` (:func:`contest_ap50`).
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_utils

from mmcell.datasets.metainfo import CLASSES as DEFAULT_CLASSES
from mmcell.datasets.metainfo import CONTEST_MAX_DETS
from mmcell.utils.fileio import save_figure


def _rle(seg: Mapping) -> dict:
    counts = seg['counts']
    return {'size': list(seg['size']), 'counts': counts.encode() if isinstance(counts, str) else counts}


def gt_as_results(gt: Mapping, score: float = 1.0) -> list:
    """The GT annotations written as predictions in the submission format (perfect predictions)."""
    return [dict(image_id=a['image_id'], category_id=a['category_id'], bbox=[float(v) for v in a['bbox']],
                 score=float(score), segmentation=dict(size=list(a['segmentation']['size']),
                                                       counts=_rle(a['segmentation'])['counts'].decode()))
            for a in gt['annotations'] if not a.get('iscrowd', 0)]


def contest_ap50(gt: Mapping, results: Sequence[Mapping], max_dets: int = CONTEST_MAX_DETS) -> float:
    """COCO segm AP at IoU 0.5 by plain pycocotools, as the contest computes it (``maxDets`` 1, 10, ``max_dets``).

    Returns 0.0 when there is no prediction.
    """
    from pycocotools.cocoeval import COCOeval

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


def evaluate_submission(results: Sequence[Mapping], ann_file: str,
                        classes: Sequence[str] = DEFAULT_CLASSES) -> dict:
    """Score a submission against a COCO ground-truth file with mmcell's evaluator (``CellCocoMetric``, segm).

    Every image of the GT file is scored (an image without predictions counts its cells as missed).

    Returns:
        the metric's keys without prefix: ``segm_mAP_50`` (contest, maxDets 100), ``segm_mAP_50_md1000``, ...
    """
    from .metrics.cell_coco_metric import CellCocoMetric

    metric = CellCocoMetric(ann_file=ann_file, metric='segm', classwise=False)
    metric.dataset_meta = dict(classes=tuple(classes))
    by_img: dict = {}
    for r in results:
        by_img.setdefault(r['image_id'], []).append(r)
    unknown = sorted(set(by_img) - set(metric._coco_api.imgs))
    if unknown:
        raise ValueError(f'{ann_file}: image ids {unknown[:5]} of the submission are not in the file')
    processed = []
    for img_id, img in metric._coco_api.imgs.items():
        dets = by_img.get(img_id, [])
        boxes = np.array([r['bbox'] for r in dets], np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        pred = dict(img_id=img_id, bboxes=boxes, scores=np.array([r['score'] for r in dets], np.float64),
                    labels=np.array([r['category_id'] - 1 for r in dets], np.int64),
                    masks=[dict(r['segmentation']) for r in dets])
        processed.append((dict(img_id=img_id, width=img['width'], height=img['height']), pred))
    return metric.compute_metrics(processed)


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
    from pycocotools.coco import COCO

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
    from pycocotools.cocoeval import COCOeval

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


def class_confusion(gt: Mapping, results: Sequence[Mapping], iou_thr: float = 0.5, score_thr: float = 0.5,
                    num_classes: int = len(DEFAULT_CLASSES)) -> np.ndarray:
    """Class confusion of instances matched regardless of class (mask IoU >= ``iou_thr``).

    Returns:
        (K + 1, K + 1) int array: entry [g, p] counts GT class g + 1 matched by a detection of class p + 1; the
        last column counts missed GT of each class, the last row unmatched detections (false positives) of each
        predicted class.
    """
    kept = [r for r in results if r['score'] >= score_thr]
    m = match_detections(gt, kept, iou_thr, class_aware=False)
    k = num_classes
    conf = np.zeros((k + 1, k + 1), np.int64)
    for g, p in zip(m.gt_category, m.gt_matched_category):
        conf[g - 1, (p - 1) if p else k] += 1
    for r, matched in zip(kept, m.det_matched):
        if not matched:
            conf[k, r['category_id'] - 1] += 1
    return conf


# ------------------------------------------------------------------------------------------------------ plots
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use('Agg')  # files only; never open a window
    import matplotlib.pyplot as plt

    return plt


def plot_score_histogram(scores: np.ndarray, matched: np.ndarray, out_png: str, iou_thr: float = 0.5,
                         sweep: Sequence[Mapping] | None = None) -> str:
    """Histogram of detection scores split into matched (TP) / unmatched (FP), and the AP50 threshold sweep."""
    plt = _pyplot()
    ncols = 2 if sweep else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    bins = np.linspace(0, 1, 41)
    ax = axes[0, 0]
    ax.hist(scores[matched], bins=bins, alpha=0.7, label=f'matched GT (IoU>={iou_thr:g}): {int(matched.sum())}')
    ax.hist(scores[~matched], bins=bins, alpha=0.7, label=f'unmatched: {int((~matched).sum())}')
    ax.set_xlabel('score')
    ax.set_ylabel('detections')
    ax.set_yscale('log')
    ax.legend()
    ax.set_title('prediction scores')
    if sweep:
        ax = axes[0, 1]
        thr = [r['score_thr'] for r in sweep]
        ax.plot(thr, [r['ap50'] for r in sweep], marker='o')
        best = max(sweep, key=lambda r: r['ap50'])
        ax.axvline(best['score_thr'], ls='--', c='grey')
        ax.set_xlabel('score threshold')
        ax.set_ylabel('contest AP50 (segm, maxDets 100)')
        ax.set_title(f'best {best["ap50"]:.4f} at {best["score_thr"]:g}')
    fig.tight_layout()
    save_figure(fig, out_png, dpi=100)
    plt.close(fig)
    return out_png


def plot_confusion(conf: np.ndarray, classes: Sequence[str], out_png: str) -> str:
    """Heat map of :func:`class_confusion` with counts in the cells."""
    plt = _pyplot()
    rows = list(classes) + ['(false pos.)']
    cols = list(classes) + ['(missed)']
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2, 1.1 * len(rows) + 1.5))
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            ax.text(j, i, str(conf[i, j]), ha='center', va='center', color='black' if norm[i, j] < 0.6 else 'white')
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha='right')
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel('predicted class')
    ax.set_ylabel('ground-truth class')
    fig.tight_layout()
    save_figure(fig, out_png, dpi=100)
    plt.close(fig)
    return out_png


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


def render_comparison(image: np.ndarray, gt_masks: np.ndarray, gt_labels: Sequence[int], pred_masks: np.ndarray,
                      pred_labels: Sequence[int], pred_scores: Sequence[float] | None = None,
                      classes: Sequence[str] = DEFAULT_CLASSES, palette: Sequence | None = None,
                      show_scores: bool = False, min_side: int = 384) -> np.ndarray:
    """Side-by-side ``original | GT | prediction`` panels with instance contours coloured by class.

    Drawing goes through mmdet's ``DetLocalVisualizer`` (its matplotlib backend and palette helpers).

    Args:
        image: (H, W, 3) uint8 RGB.
        gt_masks, pred_masks: (N, H, W) bool.
        gt_labels, pred_labels: model labels 0..K-1.
        pred_scores: scores, drawn next to each prediction when ``show_scores``.
        classes, palette: names and RGB colours per class (default: mmdet's palette for K classes).
        show_scores: write the score of each prediction.
        min_side: small images are enlarged (nearest) so that their short side is at least this.

    Returns:
        (H', 3 W' + 2 * gap, 3) uint8 RGB.
    """
    import cv2
    from mmdet.structures.mask import bitmap_to_polygon
    from mmdet.visualization import DetLocalVisualizer
    from mmdet.visualization.palette import get_palette

    colors = get_palette(list(palette) if palette else 'random', len(classes))
    scale = max(1, int(np.ceil(min_side / max(1, min(image.shape[:2])))))
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    vis = DetLocalVisualizer(name=f'mmcell_compare_{id(image)}', line_width=1)

    def panel(masks: np.ndarray, labels: Sequence[int], scores: Sequence[float] | None, title: str) -> np.ndarray:
        vis.set_image(image.copy())
        for i, (mask, label) in enumerate(zip(masks, labels)):
            mask = np.asarray(mask, bool)
            if scale > 1:
                mask = np.kron(mask, np.ones((scale, scale), bool))
            contours, _ = bitmap_to_polygon(mask)
            contours = [c for c in contours if len(c) >= 3]
            if not contours:
                continue
            color = tuple(int(c) for c in colors[int(label)])
            vis.draw_polygons(contours, edge_colors=[color] * len(contours), line_widths=1.5)
            if show_scores and scores is not None:
                ys, xs = np.nonzero(mask)
                vis.draw_texts(f'{float(scores[i]):.2f}', np.array([xs.min(), ys.min()]), colors=color,
                               font_sizes=8)
        vis.draw_texts(title, np.array([4, 4]), colors=(255, 255, 255), font_sizes=10,
                       bboxes=[dict(facecolor='black', alpha=0.6, pad=1, edgecolor='none')])
        return vis.get_image()

    original = panel(np.zeros((0,) + image.shape[:2], bool), [], None, 'original')
    gt_panel = panel(gt_masks, gt_labels, None, f'GT ({len(gt_labels)})')
    pred_panel = panel(pred_masks, pred_labels, pred_scores, f'prediction ({len(pred_labels)})')
    gap = np.full((image.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([original, gap, gt_panel, gap, pred_panel], axis=1)


def crop_rle(crop: np.ndarray, x1: int, y1: int, height: int, width: int) -> dict:
    """COCO RLE (compressed) of a boolean ``crop`` placed at ``(x1, y1)`` in a ``height`` x ``width`` image,
    built from the crop's pixels only (encoding a full-size mask per nucleus would walk the whole image)."""
    ys, xs = np.nonzero(np.asarray(crop).T)  # transposed: column-major order of the image
    lin = (ys + x1).astype(np.int64) * height + (xs + y1)
    if not lin.size:
        return mask_utils.frPyObjects({'size': [height, width], 'counts': [height * width]}, height, width)
    breaks = np.flatnonzero(np.diff(lin) != 1)
    starts = np.r_[lin[0], lin[breaks + 1]]
    ends = np.r_[lin[breaks], lin[-1]] + 1
    counts = np.empty(2 * len(starts) + 1, np.int64)
    counts[0::2] = np.r_[starts, height * width] - np.r_[0, ends]
    counts[1::2] = ends - starts
    if counts[-1] == 0:  # ends at the last pixel: no trailing background run (as pycocotools writes it)
        counts = counts[:-1]
    return mask_utils.frPyObjects({'size': [height, width], 'counts': counts.tolist()}, height, width)


def label_image_to_coco(ids: np.ndarray, classes: np.ndarray, scores: Optional[Mapping[int, float]] = None,
                        class_names: Sequence[str] = DEFAULT_CLASSES) -> tuple:
    """COCO ground truth (image id 1) and the same instances as results, from a label image + class map.

    For scoring whole-slide outputs (``labels.ome.tif``) or slide ground truth (``*_gt.ome.tif``): instance ``i``
    is ``ids == i`` with class ``classes`` there (1..K); ``scores`` maps ids to scores (default 1).
    """
    from scipy import ndimage

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
    from mmcell.datasets.coco_gt import coco_ground_truth

    return coco_ground_truth([infos], class_names), results
