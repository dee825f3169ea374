"""COCO bbox/segm metric with the HW3 contest semantics, computed with faster-coco-eval.

The contest scores segm AP50 with plain pycocotools and its default ``maxDets=(1, 10, 100)``: only the 100
highest-scoring detections per image **and** category count. mmdet's ``CocoMetric`` sets
``maxDets=(100, 300, 1000)`` and reports AP at 1000, which is not the contest figure; on images with hundreds of
nuclei the two differ. ``CellCocoMetric`` reports both, from one evaluation pass:

- ``{metric}_mAP``, ``_mAP_50``, ``_mAP_75``, ``_mAP_s/m/l``: pycocotools ``stats[0:6]`` (maxDets 100);
  ``coco/segm_mAP_50`` is the contest AP50 and the key that selects the best checkpoint.
- ``{metric}_mAP_md1000``, ``_mAP_50_md1000``, ``_mAP_75_md1000``: the same with maxDets 1000.
- per class (``classwise=True``): ``{metric}_{class}_AP50``, ``_AP50_md1000`` and ``_AP`` (maxDets 100).

Values are not rounded (mmdet rounds to 3 decimals) so they can be compared with pycocotools; ``-1`` means
"no ground truth for this figure", as in pycocotools.
"""
from __future__ import annotations

import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from faster_coco_eval import COCO, COCOeval_faster
from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS
from mmdet.structures.mask import encode_mask_results
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger
from terminaltables import AsciiTable

from mmcell.datasets.coco_gt import coco_ground_truth
from mmcell.datasets.metainfo import CLASSES as DEFAULT_CLASSES
from mmcell.datasets.metainfo import CONTEST_MAX_DETS, DENSE_MAX_DETS

#: maxDets of one evaluation pass: 100 is the contest (pycocotools default), 1000 the honest dense figure.
_MAXDET_INDEX = {CONTEST_MAX_DETS: 0, DENSE_MAX_DETS: 1}


def _silent(*args, **kwargs) -> None:
    """faster-coco-eval prints progress lines through this; the metric logs its own table instead."""


def average_precision(precision: np.ndarray, iou_thrs: np.ndarray, iou: Optional[float] = None,
                      cat_index: Optional[int] = None, area_index: int = 0, maxdet_index: int = 0) -> float:
    """AP from a COCOeval ``eval['precision']`` array ``[T, R, K, A, M]``, exactly as pycocotools' ``_summarize``.

    Args:
        precision: the accumulated precision array.
        iou_thrs: the IoU thresholds of axis T.
        iou: one IoU threshold (e.g. 0.5) or None for the mean over all thresholds.
        cat_index: one category (axis K) or None for all.
        area_index: area range (0 = all).
        maxdet_index: index into ``params.maxDets``.

    Returns:
        The mean over valid entries, or -1 when there are none (no ground truth), as pycocotools.
    """
    s = precision[..., area_index, maxdet_index]
    if iou is not None:
        s = s[np.where(np.isclose(iou_thrs, iou))[0]]
    if cat_index is not None:
        s = s[:, :, cat_index]
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def evaluate_coco(coco_gt: COCO, predictions: List[dict], iou_type: str, cat_ids: Sequence[int],
                  img_ids: Sequence[int], iou_thrs: Optional[np.ndarray] = None,
                  max_dets: Sequence[int] = (CONTEST_MAX_DETS, DENSE_MAX_DETS)) -> COCOeval_faster:
    """Run faster-coco-eval's evaluate + accumulate once for several maxDets.

    Evaluating with ``maxDets=(100, 1000)`` gives at index 0 exactly what pycocotools gives with its default
    ``(1, 10, 100)``: detections are matched greedily in score order per image and category, so the matches
    of the best 100 do not depend on the detections after them.

    Args:
        coco_gt: ground truth.
        predictions: COCO result dicts (``image_id``, ``category_id``, ``score`` and ``bbox`` or
            ``segmentation`` as RLE); they are copied, not modified.
        iou_type: 'bbox' or 'segm'.
        cat_ids: categories to evaluate (their order is axis K of the precision array).
        img_ids: images to evaluate.
        iou_thrs: IoU thresholds; None for COCO's 0.50:0.05:0.95.
        max_dets: maxDets list, ascending.

    Returns:
        The evaluator, with ``eval['precision']`` filled; its axis K follows ``sorted(cat_ids)``.
    """
    coco_dt = coco_gt.loadRes([dict(p) for p in predictions])
    coco_eval = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=_silent)
    coco_eval.params.catIds = list(cat_ids)
    coco_eval.params.imgIds = list(img_ids)
    coco_eval.params.maxDets = sorted(max_dets)
    if iou_thrs is not None:
        coco_eval.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
    coco_eval.evaluate()
    coco_eval.accumulate()
    return coco_eval


@METRICS.register_module()
class CellCocoMetric(CocoMetric):
    """COCO bbox/segm AP with the contest AP50 (maxDets 100 per image and class) and maxDets-1000 figures.

    A drop-in replacement for mmdet's ``CocoMetric`` (same arguments) that evaluates with faster-coco-eval
    (C++, identical figures to pycocotools, tested) and reports the keys described in the module docstring.

    Args:
        ann_file: COCO json with the ground truth (e.g. the synthetic set's ``test_gt_coco.json``). If None, the
            ground truth comes from the data samples: the pipeline's ``PackDetInputs`` must keep ``'instances'``
            in ``meta_keys`` (original-size boxes and RLE masks from the dataset).
        metric: 'bbox', 'segm' or both.
        classwise: also report per-class AP50 (contest and maxDets 1000) and AP. Defaults to True.
        class_agnostic: score every prediction and ground-truth instance as one class ``'nucleus'`` (how well a
            model finds and outlines nuclei, whatever their class; e.g. a 4-class model on a 1-class data set).
            Needs the ground truth from the data samples (no ``ann_file``).
        **kwargs: the other ``CocoMetric`` arguments (iou_thrs, format_only, outfile_prefix, prefix, ...).
            ``proposal_nums``/``use_mp_eval`` are ignored: maxDets are fixed to (100, 1000).
    """

    def __init__(self, ann_file: Optional[str] = None, metric: Union[str, List[str]] = ('bbox', 'segm'),
                 classwise: bool = True, class_agnostic: bool = False, **kwargs) -> None:
        metric = list(metric) if isinstance(metric, (list, tuple)) else [metric]
        unsupported = [m for m in metric if m not in ('bbox', 'segm')]
        if unsupported:
            raise KeyError(f'CellCocoMetric evaluates bbox and segm, not {unsupported}')
        super().__init__(ann_file=None, metric=metric, classwise=classwise, **kwargs)
        self.ann_file = ann_file
        self.class_agnostic = class_agnostic
        if class_agnostic and ann_file is not None:
            raise ValueError(f'{ann_file}: class_agnostic=True scores the ground truth of the data samples; '
                             'drop ann_file')
        self._coco_api = None
        if ann_file is not None:
            with get_local_path(ann_file, backend_args=self.backend_args) as local_path:
                if not osp.isfile(local_path):
                    raise FileNotFoundError(f'{ann_file}: ground-truth annotation file not found')
                self._coco_api = COCO(local_path, print_function=_silent)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each image's predictions (masks as RLE) and, without ann_file, its ground truth."""
        for data_sample in data_samples:
            pred = data_sample['pred_instances']
            result = dict(img_id=data_sample['img_id'],
                          bboxes=pred['bboxes'].cpu().numpy(),
                          scores=pred['scores'].cpu().numpy(),
                          labels=pred['labels'].cpu().numpy())
            if self.class_agnostic:
                result['labels'] = np.zeros_like(result['labels'])
            if 'masks' in pred:
                masks = pred['masks']
                result['masks'] = encode_mask_results(masks.detach().cpu().numpy()) \
                    if isinstance(masks, torch.Tensor) else masks
            if 'mask_scores' in pred:
                result['mask_scores'] = pred['mask_scores'].cpu().numpy()
            gt = dict(img_id=data_sample['img_id'], width=data_sample['ori_shape'][1],
                      height=data_sample['ori_shape'][0])
            if self._coco_api is None:
                if 'instances' not in data_sample:
                    raise KeyError(
                        'CellCocoMetric without ann_file needs the ground truth in the data samples: add '
                        "'instances' to PackDetInputs.meta_keys of the val/test pipeline")
                gt['anns'] = data_sample['instances']
            self.results.append((gt, result))

    def _classes(self) -> List[str]:
        return ['nucleus'] if self.class_agnostic else list(self.dataset_meta['classes'])

    def gt_to_coco_dict(self, gts: Sequence[dict]) -> dict:
        """COCO ground truth from the dataset's instances (mmcell's one builder, ``coco_ground_truth``)."""

        def instances(anns: list) -> list:
            return [dict(a, bbox_label=0) for a in anns] if self.class_agnostic else anns

        return coco_ground_truth((dict(img_id=gt['img_id'], height=gt['height'], width=gt['width'], file_name='',
                                       instances=instances(gt['anns'])) for gt in gts), self._classes())

    def predictions_to_coco(self, preds: Sequence[dict], cat_ids: Sequence[int]) -> Dict[str, List[dict]]:
        """COCO result dicts per iou type; segm results carry no bbox so their area is the mask area."""
        out: Dict[str, List[dict]] = dict(bbox=[], segm=[])
        for pred in preds:
            img_id = pred['img_id']
            scores = pred['scores'].tolist()
            mask_scores = pred.get('mask_scores', pred['scores']).tolist()
            for i, (label, box) in enumerate(zip(pred['labels'].tolist(), pred['bboxes'].tolist())):
                out['bbox'].append(dict(image_id=img_id, category_id=cat_ids[label], score=scores[i],
                                        bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]]))
                if 'masks' in pred:
                    rle = dict(pred['masks'][i])
                    if isinstance(rle['counts'], bytes):
                        rle['counts'] = rle['counts'].decode()
                    out['segm'].append(dict(image_id=img_id, category_id=cat_ids[label], score=mask_scores[i],
                                            segmentation=rle))
        return out

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Evaluate every metric once with maxDets (100, 1000) and return the keys of the module docstring."""
        logger: MMLogger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        classes = self._classes()
        coco_gt = self._coco_api
        if coco_gt is None:
            coco_gt = COCO(self.gt_to_coco_dict(gts), print_function=_silent)
            cat_ids = list(range(1, len(classes) + 1))
        else:
            by_name = {cat['name']: cat['id'] for cat in coco_gt.dataset['categories']}
            missing = [c for c in classes if c not in by_name]
            if missing:
                raise ValueError(f'{self.ann_file}: categories {missing} of the dataset are not in the file')
            cat_ids = [by_name[c] for c in classes]
        self.cat_ids = cat_ids
        # Score the images that were predicted (all of them in a full run; a subset stays honest).
        img_ids = sorted({gt['img_id'] for gt in gts})
        unknown = [i for i in img_ids if i not in coco_gt.imgs]
        if unknown:
            raise ValueError(f'{self.ann_file}: image ids {unknown[:5]} of the predictions are not in the file')
        coco_preds = self.predictions_to_coco(preds, cat_ids)

        if self.format_only or self.outfile_prefix is not None:
            outfile_prefix = self.outfile_prefix
            tmp_dir = None
            if outfile_prefix is None:
                tmp_dir = tempfile.TemporaryDirectory()
                outfile_prefix = osp.join(tmp_dir.name, 'results')
            self.results2json(preds, outfile_prefix)
            logger.info(f'COCO results saved as {outfile_prefix}.*.json')
            if self.format_only:
                return OrderedDict()

        order = np.argsort(cat_ids)  # faster-coco-eval sorts categories: axis K follows sorted(cat_ids)
        eval_results: Dict[str, float] = OrderedDict()
        table = [['metric', 'AP', 'AP50', 'AP75', 'AP50 md1000', 'AP md1000']]
        class_table = [['class', 'metric', 'AP50', 'AP50 md1000', 'AP']]
        for metric in self.metrics:
            if metric == 'segm' and not any('masks' in p for p in preds):
                raise KeyError('segm is not in results: the model predicted no masks')
            coco_eval = evaluate_coco(coco_gt, coco_preds[metric], metric, cat_ids, img_ids, self.iou_thrs)
            precision = coco_eval.eval['precision']
            thrs = coco_eval.params.iouThrs

            def ap(iou=None, cat=None, area=0, max_dets=CONTEST_MAX_DETS, precision=precision, thrs=thrs):
                return average_precision(precision, thrs, iou, cat, area, _MAXDET_INDEX[max_dets])

            eval_results[f'{metric}_mAP'] = ap()
            eval_results[f'{metric}_mAP_50'] = ap(0.5)
            eval_results[f'{metric}_mAP_75'] = ap(0.75)
            for area_index, area in enumerate(('s', 'm', 'l'), start=1):
                eval_results[f'{metric}_mAP_{area}'] = ap(area=area_index)
            eval_results[f'{metric}_mAP_md1000'] = ap(max_dets=DENSE_MAX_DETS)
            eval_results[f'{metric}_mAP_50_md1000'] = ap(0.5, max_dets=DENSE_MAX_DETS)
            eval_results[f'{metric}_mAP_75_md1000'] = ap(0.75, max_dets=DENSE_MAX_DETS)
            table.append([metric] + [f'{eval_results[f"{metric}_{k}"]:.3f}' for k in
                                     ('mAP', 'mAP_50', 'mAP_75', 'mAP_50_md1000', 'mAP_md1000')])
            if self.classwise:
                for label, name in enumerate(classes):
                    k = int(np.where(order == label)[0][0])
                    values = (ap(0.5, k), ap(0.5, k, max_dets=DENSE_MAX_DETS), ap(cat=k))
                    for suffix, value in zip(('AP50', 'AP50_md1000', 'AP'), values):
                        eval_results[f'{metric}_{name}_{suffix}'] = value
                    class_table.append([name, metric] + [f'{v:.3f}' for v in values])
        logger.info('\n' + AsciiTable(table).table)
        if self.classwise:
            logger.info('\n' + AsciiTable(class_table).table)
        return eval_results


def evaluate_submission(results: Sequence[Mapping], ann_file: Union[str, Mapping],
                        classes: Sequence[str] = DEFAULT_CLASSES, classwise: bool = False) -> dict:
    """Score a submission against a COCO ground truth with mmcell's evaluator (``CellCocoMetric``, segm).

    Every image of the GT is scored (an image without predictions counts its cells as missed).

    Args:
        ann_file: the COCO ground-truth file, or its content as a dict.
        classwise: also the per-class keys (``segm_{class}_AP50``, ``_AP50_md1000``, ``_AP``).

    Returns:
        the metric's keys without prefix: ``segm_mAP_50`` (contest, maxDets 100), ``segm_mAP_50_md1000``, ...
    """
    if isinstance(ann_file, Mapping):
        metric = CellCocoMetric(metric='segm', classwise=classwise)
        metric._coco_api = COCO(print_function=_silent)
        metric._coco_api.dataset = {k: list(v) for k, v in ann_file.items()
                                    if k in ('images', 'annotations', 'categories')}
        metric._coco_api.createIndex()
        ann_file = 'the ground truth'
    else:
        metric = CellCocoMetric(ann_file=ann_file, metric='segm', classwise=classwise)
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
