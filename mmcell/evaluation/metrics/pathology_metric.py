"""``CellPathologyMetric``: AJI, AJI+, PQ (bPQ, mPQ, per class) and detection P/R/F1 in the runner.

Use it as ``val_evaluator``/``test_evaluator`` beside (or instead of) ``CellCocoMetric``::

    val_evaluator = [dict(type='CellCocoMetric', metric=['bbox', 'segm']), dict(type='CellPathologyMetric')]

AP ranks detections and rewards keeping low-score ones; AJI and PQ score one segmentation, where every kept false
positive costs. The metric therefore turns each prediction into a label image the way ``mmcell segment`` does
(:func:`mmcell.structures.label_image.label_image`: instances scoring below ``score_thr`` dropped, overlaps to the
higher score) and the ground truth likewise (from the data samples' ``instances``, or from ``ann_file``), then scores
the two label maps with the pure functions of :mod:`mmcell.evaluation.functional`.

Keys (prefix ``pathology/``): ``aji``, ``aji_plus``, ``pq`` (binary PQ = bPQ), ``dq``, ``sq``, ``mpq`` (means over
images, NaN images skipped, as HoVer-Net and PanNuke average), ``{class}_pq`` (``classwise``), and ``precision``,
``recall``, ``f1`` (counts pooled over images).
"""
from __future__ import annotations

import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger

from mmcell.evaluation.functional.aji import aji_from_overlap, aji_plus_from_overlap
from mmcell.evaluation.functional.detection import detection_scores
from mmcell.evaluation.functional.instance_overlap import instance_overlap
from mmcell.evaluation.functional.pq import MATCH_IOU, class_pq, pq_stats
from mmcell.evaluation.submission import LABEL_SCORE_THR
from mmcell.structures.label_image import instances_to_label_map
from mmcell.structures.rle import rle_text


@METRICS.register_module()
class CellPathologyMetric(BaseMetric):
    """AJI, AJI+, PQ/mPQ and detection P/R/F1 at IoU 0.5 of predicted label images (see the module docstring).

    Args:
        ann_file: COCO json of the ground truth (e.g. the ``test_gt_coco.json`` of a converted test release;
            category id K = ``class<K>.tif`` = label K - 1). If None, the ground truth comes from the data samples
            (``'instances'`` in ``PackDetInputs.meta_keys``, as the val pipelines of mmcell keep it).
        score_thr: predictions scoring below are dropped before painting. Default
            ``LABEL_SCORE_THR`` (0.5, mmcell.evaluation.submission), the threshold of ``mmcell segment``, so the figures
            describe the label images users get; AJI/PQ count every kept false positive, so the near-zero
            thresholds used for AP would only lower them.
        match_iou: IoU above which a GT and a predicted instance match (PQ, F1).
        classwise: also report the PQ of each class.
        collect_device, prefix: as in mmengine's ``BaseMetric``.
    """

    default_prefix: Optional[str] = 'pathology'

    def __init__(self, ann_file: Optional[str] = None, score_thr: Optional[float] = None,
                 match_iou: float = MATCH_IOU, classwise: bool = True, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.score_thr = LABEL_SCORE_THR if score_thr is None else float(score_thr)
        self.match_iou = float(match_iou)
        self.classwise = classwise
        self.ann_file = ann_file
        self._gt_by_image: Optional[Dict[int, List[dict]]] = None
        if ann_file is not None:
            self._gt_by_image = self._load_ann_file(ann_file)

    @staticmethod
    def _load_ann_file(ann_file: str) -> Dict[int, List[dict]]:


        if not osp.isfile(ann_file):
            raise FileNotFoundError(f'{ann_file}: ground-truth annotation file not found')
        coco = load(ann_file)
        by_image: Dict[int, List[dict]] = defaultdict(list)
        for ann in coco.get('annotations', []):
            by_image[int(ann['image_id'])].append(
                dict(mask=ann['segmentation'], bbox_label=int(ann['category_id']) - 1))
        return by_image

    def _ground_truth(self, data_sample: dict, height: int, width: int) -> tuple:

        if self._gt_by_image is not None:
            anns = self._gt_by_image.get(int(data_sample['img_id']), [])
        elif 'instances' in data_sample:
            anns = data_sample['instances']
        else:
            raise KeyError("CellPathologyMetric without ann_file needs the ground truth in the data samples: add "
                           "'instances' to PackDetInputs.meta_keys of the val/test pipeline")
        rles = []
        for ann in anns:
            mask = ann['mask']
            if isinstance(mask, list):  # polygons
                mask = mask_util.merge(mask_util.frPyObjects(mask, height, width))
            elif isinstance(mask.get('counts'), list):  # uncompressed RLE
                mask = mask_util.frPyObjects(mask, height, width)
            rles.append(rle_text(mask))
        labels = [int(a['bbox_label']) for a in anns]
        return instances_to_label_map(rles, np.ones(len(rles)), labels, height, width)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Paint GT and prediction of each image and keep only its per-image figures (a few numbers)."""
        for data_sample in data_samples:
            height, width = (int(v) for v in data_sample['ori_shape'][:2])
            pred = data_sample['pred_instances']
            if 'masks' not in pred:
                raise KeyError('CellPathologyMetric scores masks: the model predicted none (a bbox-only model?)')
            masks = pred['masks']
            if hasattr(masks, 'detach'):
                masks = masks.detach().cpu().numpy()
            pred_map, pred_cls = instances_to_label_map(
                masks, pred['scores'].cpu().numpy(), pred['labels'].cpu().numpy(), height, width, self.score_thr)
            true_map, true_cls = self._ground_truth(data_sample, height, width)
            self.results.append(image_figures(true_map, true_cls, pred_map, pred_cls, self.match_iou))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        classes = list((self.dataset_meta or {}).get('classes', ()))
        figures = summarize_figures(results, num_classes=len(classes))
        out = {k: figures[k] for k in ('aji', 'aji_plus', 'pq', 'dq', 'sq', 'mpq', 'precision', 'recall', 'f1')}
        if self.classwise:
            for k, name in enumerate(classes, start=1):
                out[f'{name}_pq'] = figures['class_pq'].get(k, float('nan'))
        MMLogger.get_current_instance().info(
            f'pathology (score_thr {self.score_thr:.2f}, {len(results)} images): '
            + ', '.join(f'{k} {v:.4f}' for k, v in out.items()))
        return out


def image_figures(true_map: np.ndarray, true_cls: np.ndarray, pred_map: np.ndarray, pred_cls: np.ndarray,
                  match_iou: float = MATCH_IOU) -> dict:
    """Every per-image figure the metric averages or pools (label maps with ids 1..N and their classes)."""
    ov = instance_overlap(true_map, pred_map)
    stats = pq_stats(ov, match_iou)
    tc, pc = true_cls[ov.true_ids], pred_cls[ov.pred_ids]
    present = sorted(set(tc.tolist()))
    has_gt = len(ov.true_ids) > 0
    return dict(aji=aji_from_overlap(ov), aji_plus=aji_plus_from_overlap(ov),
                pq=stats.pq if has_gt else float('nan'), dq=stats.dq if has_gt else float('nan'),
                sq=stats.sq if has_gt else float('nan'), tp=stats.tp, fp=stats.fp, fn=stats.fn,
                class_pq=class_pq(ov, tc, pc, present, match_iou))


def _nanmean(values: Sequence[float]) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float('nan')


def summarize_figures(results: Sequence[dict], num_classes: int = 0) -> dict:
    """Data-set figures from :func:`image_figures` of every image (see the module docstring)."""
    class_ids = sorted({k for r in results for k in r['class_pq']} | set(range(1, num_classes + 1)))
    class_pq_mean = {k: _nanmean([r['class_pq'].get(k, float('nan')) for r in results]) for k in class_ids}
    mpq_per_image = [_nanmean(list(r['class_pq'].values())) for r in results]
    tp, fp, fn = (sum(r[k] for r in results) for k in ('tp', 'fp', 'fn'))
    return dict(aji=_nanmean([r['aji'] for r in results]), aji_plus=_nanmean([r['aji_plus'] for r in results]),
                pq=_nanmean([r['pq'] for r in results]), dq=_nanmean([r['dq'] for r in results]),
                sq=_nanmean([r['sq'] for r in results]), mpq=_nanmean(mpq_per_image), class_pq=class_pq_mean,
                **detection_scores(tp, fp, fn))
