"""CellCocoMetric (faster-coco-eval) gives pycocotools' figures, with contest maxDets 100 and maxDets 1000."""
from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as pmask
import pytest
import torch
from mmdet.registry import METRICS
from pycocotools.coco import COCO as PyCOCO
from pycocotools.cocoeval import COCOeval as PyCOCOeval

from mmcell.evaluation.metrics.cell_coco_metric import CellCocoMetric

CLASSES = ('epithelial', 'lymphocyte', 'macrophage', 'neutrophil')


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _rle(mask: np.ndarray) -> dict:
    rle = pmask.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode()
    return rle


def _bbox_xyxy(mask: np.ndarray) -> list:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.fixture(scope='module')
def scene():
    """Ground truth + imperfect predictions on 6 images; image 1 is dense (220 nuclei of one class)."""
    rng = np.random.default_rng(0)
    gts, samples = [], []
    for img_id in range(1, 7):
        h, w = (160, 192) if img_id == 1 else (96, 128)
        n = 220 if img_id == 1 else int(rng.integers(5, 25))
        instances, pred_masks, pred_labels, pred_scores = [], [], [], []
        for j in range(n):
            label = 0 if img_id == 1 else int(rng.choice(4, p=[0.3, 0.5, 0.1, 0.1]))
            r = rng.uniform(2.5, 6.0)
            cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
            mask = _disc(h, w, cy, cx, r)
            ignore = int(img_id == 2 and j == 0)  # one crowd region: both implementations must ignore it alike
            instances.append(dict(bbox=_bbox_xyxy(mask), bbox_label=label, mask=_rle(mask), ignore_flag=ignore))
            if rng.random() < 0.85:  # a detection of this nucleus, shifted, sometimes with the wrong class
                dy, dx = rng.normal(0, 1.2, 2)
                pred_masks.append(_disc(h, w, cy + dy, cx + dx, r * rng.uniform(0.8, 1.2)))
                pred_labels.append(label if rng.random() < 0.9 else int(rng.integers(4)))
                pred_scores.append(float(rng.uniform(0.05, 1.0)))
        for _ in range(int(rng.integers(3, 40))):  # false positives
            r = rng.uniform(2.5, 6.0)
            pred_masks.append(_disc(h, w, rng.uniform(r, h - r), rng.uniform(r, w - r), r))
            pred_labels.append(int(rng.integers(4)))
            pred_scores.append(float(rng.uniform(0.0, 0.7)))
        masks = torch.from_numpy(np.stack(pred_masks))
        boxes = torch.tensor([_bbox_xyxy(m) for m in pred_masks], dtype=torch.float32)
        samples.append(dict(
            img_id=img_id, ori_shape=(h, w), instances=instances,
            pred_instances=dict(bboxes=boxes, scores=torch.tensor(pred_scores), labels=torch.tensor(pred_labels),
                                masks=masks)))
        gts.append((img_id, h, w, instances))
    return gts, samples


def _reference_coco(gts) -> dict:
    """An independent COCO ground-truth json (contest category ids 1..4)."""
    images, anns = [], []
    for img_id, h, w, instances in gts:
        images.append(dict(id=img_id, height=h, width=w, file_name=f'{img_id}.tif'))
        for inst in instances:
            x1, y1, x2, y2 = inst['bbox']
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=inst['bbox_label'] + 1,
                             bbox=[x1, y1, x2 - x1, y2 - y1], area=float(pmask.area(inst['mask'])),
                             segmentation=inst['mask'], iscrowd=inst['ignore_flag']))
    return dict(images=images, annotations=anns, categories=[dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)])


def _reference(gt_json: dict, samples, iou_type: str, max_dets: int, cat_ids=None) -> dict:
    """Plain pycocotools, as the contest runs it (maxDets 100), or with maxDets 1000."""
    coco_gt = PyCOCO()
    coco_gt.dataset = json.loads(json.dumps(gt_json))
    coco_gt.createIndex()
    dets = []
    for s in samples:
        p = s['pred_instances']
        for box, score, label, mask in zip(p['bboxes'].tolist(), p['scores'].tolist(), p['labels'].tolist(),
                                           p['masks'].numpy()):
            det = dict(image_id=s['img_id'], category_id=label + 1, score=score)
            if iou_type == 'bbox':
                det['bbox'] = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
            else:
                det['segmentation'] = _rle(mask)
            dets.append(det)
    ev = PyCOCOeval(coco_gt, coco_gt.loadRes(dets), iou_type)
    ev.params.maxDets = [1, 10, max_dets]
    if cat_ids is not None:
        ev.params.catIds = cat_ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()  # stats[1:6] use maxDets[2]; stats[0] is fixed to maxDets=100 in pycocotools
    precision = ev.eval['precision'][:, :, :, 0, 2]
    ap = ev.stats[0] if max_dets == 100 else float(np.mean(precision[precision > -1]))
    return dict(AP=ap, AP50=ev.stats[1], AP75=ev.stats[2], AP_s=ev.stats[3], AP_m=ev.stats[4], AP_l=ev.stats[5])


def _run_metric(samples, **kwargs) -> dict:
    metric = METRICS.build(dict(type='CellCocoMetric', **kwargs))
    assert isinstance(metric, CellCocoMetric)
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, samples[:3])
    metric.process({}, samples[3:])
    return metric.compute_metrics(metric.results)


@pytest.fixture(scope='module')
def metric_from_samples(scene):
    return _run_metric(scene[1])


@pytest.mark.parametrize('iou_type', ['segm', 'bbox'])
def test_equals_pycocotools(scene, metric_from_samples, iou_type):
    gts, samples = scene
    res, gt_json = metric_from_samples, _reference_coco(gts)
    contest = _reference(gt_json, samples, iou_type, 100)
    dense = _reference(gt_json, samples, iou_type, 1000)
    pairs = dict(mAP='AP', mAP_50='AP50', mAP_75='AP75', mAP_s='AP_s', mAP_m='AP_m', mAP_l='AP_l')
    for key, ref in pairs.items():
        assert res[f'{iou_type}_{key}'] == pytest.approx(contest[ref], abs=1e-6), key
    for key, ref in dict(mAP_md1000='AP', mAP_50_md1000='AP50', mAP_75_md1000='AP75').items():
        assert res[f'{iou_type}_{key}'] == pytest.approx(dense[ref], abs=1e-6), key
    # The dense image has > 100 detections of one class: the contest figure must be the truncated one.
    assert res[f'{iou_type}_mAP_50_md1000'] > res[f'{iou_type}_mAP_50'] + 0.01
    for label, name in enumerate(CLASSES):
        one = _reference(gt_json, samples, iou_type, 100, cat_ids=[label + 1])
        one_dense = _reference(gt_json, samples, iou_type, 1000, cat_ids=[label + 1])
        assert res[f'{iou_type}_{name}_AP50'] == pytest.approx(one['AP50'], abs=1e-6), name
        assert res[f'{iou_type}_{name}_AP'] == pytest.approx(one['AP'], abs=1e-6), name
        assert res[f'{iou_type}_{name}_AP50_md1000'] == pytest.approx(one_dense['AP50'], abs=1e-6), name


def test_ann_file_gives_same_figures(scene, metric_from_samples, tmp_path):
    gts, samples = scene
    ann_file = tmp_path / 'gt.json'
    ann_file.write_text(json.dumps(_reference_coco(gts)))
    res = _run_metric(samples, ann_file=str(ann_file))
    assert res.keys() == metric_from_samples.keys()
    for key, value in metric_from_samples.items():
        assert res[key] == pytest.approx(value, abs=1e-9), key


def test_bad_inputs(scene, tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.json'):
        CellCocoMetric(ann_file=str(tmp_path / 'missing.json'))
    metric = CellCocoMetric()
    sample = dict(scene[1][0])
    del sample['instances']
    with pytest.raises(KeyError, match='meta_keys'):
        metric.process({}, [sample])


def test_class_agnostic_equals_pycocotools_on_merged_classes(scene):
    """class_agnostic=True scores as if every GT and prediction were one class (reference: relabelled data)."""
    gts, samples = scene
    res = _run_metric(samples, class_agnostic=True)
    merged_gts = [(i, h, w, [{**inst, 'bbox_label': 0} for inst in insts]) for i, h, w, insts in gts]
    merged = [{**s, 'pred_instances': {**s['pred_instances'],
                                       'labels': torch.zeros_like(s['pred_instances']['labels'])}} for s in samples]
    for iou_type in ('segm', 'bbox'):
        ref = _reference(_reference_coco(merged_gts), merged, iou_type, 1000, cat_ids=[1])
        assert res[f'{iou_type}_mAP_50_md1000'] == pytest.approx(ref['AP50'], abs=1e-6)
        assert res[f'{iou_type}_mAP_md1000'] == pytest.approx(ref['AP'], abs=1e-6)
    # wrong-class detections count as hits once classes are merged
    assert res['segm_mAP_50_md1000'] > _run_metric(samples)['segm_mAP_50_md1000']
    with pytest.raises(ValueError, match='class_agnostic'):
        CellCocoMetric(ann_file='gt.json', class_agnostic=True)
