"""``CellPathologyMetric``: AJI, AJI+, PQ (bPQ, mPQ, per class), detection P/R/F1 and HoVer-Net's classification
figures (F_d, F_c per class, the class confusion matrix of matched nuclei) in the runner.

Use it as ``val_evaluator``/``test_evaluator`` beside (or instead of) ``CellCocoMetric``::

    val_evaluator = [dict(type='CellCocoMetric', metric=['bbox', 'segm']), dict(type='CellPathologyMetric')]

AP ranks detections and rewards keeping low-score ones; AJI and PQ score one segmentation, where every kept false
positive costs. The metric therefore turns each prediction into a label image the way ``mmcell segment`` does
(:func:`mmcell.structures.label_image.label_image`: instances scoring below ``score_thr`` dropped, overlaps to the
higher score) and the ground truth likewise (from the data samples' ``instances``, or from ``ann_file``), then scores
the two label maps with :mod:`mmcell.evaluation.functional.pathology`.

Keys (prefix ``pathology/``): ``aji``, ``aji_plus``, ``pq`` (binary PQ = bPQ), ``dq``, ``sq`` (means over images,
NaN images skipped, as HoVer-Net and PanNuke average), ``precision``, ``recall``, ``f1`` (IoU 0.5, counts pooled
over images) and ``hovernet_f1d`` (HoVer-Net's detection F1: centroids within 12 px). With more than one class also
``mpq``, ``type_acc`` and, with ``classwise``, ``{class}_pq`` and ``{class}_f1c`` (HoVer-Net's classification F1);
the confusion matrix is logged as a table and kept in :attr:`CellPathologyMetric.confusion` (``tools/test.py``
draws it).
"""
from __future__ import annotations

import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger

from mmcell.evaluation.functional.classification import CENTROID_RADIUS, confusion_rows
from mmcell.evaluation.functional.coco import format_table
from mmcell.evaluation.functional.pathology import image_figures, summarize_figures
from mmcell.evaluation.functional.pq import MATCH_IOU
from mmcell.evaluation.submission import LABEL_SCORE_THR
from mmcell.structures.label_image import instances_to_label_map
from mmcell.structures.rle import rle_text


@METRICS.register_module()
class CellPathologyMetric(BaseMetric):
    """AJI, AJI+, PQ/mPQ, detection P/R/F1 at IoU 0.5 and HoVer-Net's F_d / F_c / confusion of predicted label
    images (see the module docstring).

    Args:
        ann_file: COCO json of the ground truth (e.g. the ``test_gt_coco.json`` of a converted test release;
            category id K = ``class<K>.tif`` = label K - 1). If None, the ground truth comes from the data samples
            (``'instances'`` in ``PackDetInputs.meta_keys``, as the val pipelines of mmcell keep it).
        score_thr: predictions scoring below are dropped before painting. Default
            ``LABEL_SCORE_THR`` (0.5, mmcell.evaluation.submission), the threshold of ``mmcell segment``, so the figures
            describe the label images users get; AJI/PQ count every kept false positive, so the near-zero
            thresholds used for AP would only lower them.
        match_iou: IoU above which a GT and a predicted instance match (PQ, F1).
        radius: centroid distance (px) within which HoVer-Net pairs a GT and a predicted nucleus (F_d, F_c,
            confusion); 12 px at 40x as HoVer-Net, scale it with the resolution.
        classwise: also report the PQ and F_c of each class (data sets of more than one class).

    Attributes:
        confusion: after :meth:`compute_metrics`, the pooled (K + 1, K + 1) confusion matrix of HoVer-Net's pairs
            (:func:`mmcell.evaluation.functional.classification.confusion_matrix`) and ``classes`` its class names.
        collect_device, prefix: as in mmengine's ``BaseMetric``.
    """

    default_prefix: Optional[str] = 'pathology'

    def __init__(self, ann_file: Optional[str] = None, score_thr: Optional[float] = None,
                 match_iou: float = MATCH_IOU, radius: float = CENTROID_RADIUS, classwise: bool = True,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.score_thr = LABEL_SCORE_THR if score_thr is None else float(score_thr)
        self.match_iou = float(match_iou)
        self.radius = float(radius)
        self.confusion: Optional[np.ndarray] = None
        self.classes: Tuple[str, ...] = ()
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
            self.results.append(image_figures(true_map, true_cls, pred_map, pred_cls, self.match_iou,
                                              len(self._class_names()), self.radius))

    def _class_names(self) -> Tuple[str, ...]:
        return tuple((self.dataset_meta or {}).get('classes', ())) or ('nucleus', )

    def compute_metrics(self, results: list) -> Dict[str, float]:
        classes = self._class_names()
        figures = summarize_figures(results, num_classes=len(classes))
        out = {k: figures[k] for k in ('aji', 'aji_plus', 'pq', 'dq', 'sq', 'precision', 'recall', 'f1')}
        out['hovernet_f1d'] = figures['f1_d']
        if len(classes) > 1:
            out.update(mpq=figures['mpq'], type_acc=figures['accuracy'])
            if self.classwise:
                for k, name in enumerate(classes, start=1):
                    out[f'{name}_pq'] = figures['class_pq'][k]
                    out[f'{name}_f1c'] = figures['f1_c'][k]
        self.confusion, self.classes = figures['confusion'], classes
        logger = MMLogger.get_current_instance()
        logger.info(f'pathology (score_thr {self.score_thr:.2f}, {len(results)} images): '
                    + ', '.join(f'{k} {v:.4f}' for k, v in out.items()))
        if len(classes) > 1:
            logger.info(f'class confusion of nuclei paired within {self.radius:g} px (HoVer-Net):\n'
                        + format_table(confusion_rows(self.confusion, classes)))
        return out
