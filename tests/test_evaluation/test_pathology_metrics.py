"""AJI, AJI+, PQ/mPQ and detection F1 on small hand-computed cases, equality with the per-instance reference of
the benchmark script, and CellPathologyMetric in mmengine's Evaluator."""
from __future__ import annotations

import math
import runpy

import numpy as np
import pytest
import torch
from conftest import REPO
from mmdet.registry import METRICS
from mmdet.structures import DetDataSample
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

from mmcell.evaluation.functional.aji import aji, aji_plus
from mmcell.evaluation.functional.detection import detection_f1
from mmcell.evaluation.functional.instance_overlap import instance_overlap, max_iou_matching
from mmcell.evaluation.functional.pq import multiclass_pq, panoptic_quality

BENCH = runpy.run_path(str(REPO / 'benchmarks' / 'pathology_metrics.py'), run_name='bench')
EPS = 1.0e-6  # HoVer-Net's SQ denominator TP + 1e-6


def _map(*boxes, shape=(10, 20)):
    """Label map from (id, r0, r1, c0, c1) boxes (half-open)."""
    out = np.zeros(shape, np.int64)
    for i, r0, r1, c0, c1 in boxes:
        out[r0:r1, c0:c1] = i
    return out


# GT nucleus of 40 px (rows 0-3, cols 0-9); part A = cols 0-6 (28 px), part B = cols 7-9 (12 px)
WHOLE = (0, 4, 0, 10)
PART_A, PART_B = (0, 4, 0, 7), (0, 4, 7, 10)


def test_perfect_match_with_large_non_contiguous_ids():
    true = _map((300, *WHOLE), (7, 6, 9, 12, 18))
    pred = _map((5, *WHOLE), (1000, 6, 9, 12, 18))
    assert aji(true, pred) == 1.0 and aji_plus(true, pred) == 1.0
    pq = panoptic_quality(true, pred)
    assert pq['dq'] == 1.0 and pq['sq'] == pytest.approx(2 / (2 + EPS), abs=0, rel=1e-12)
    assert detection_f1(true, pred) == dict(precision=1.0, recall=1.0, f1=1.0)


def test_split():
    true = _map((1, *WHOLE))
    pred = _map((1, *PART_A), (2, *PART_B))
    # GT pairs with part A (IoU 0.7); part B is unpaired: its 12 px join the union
    assert aji(true, pred) == pytest.approx(28 / (40 + 12))
    assert aji_plus(true, pred) == pytest.approx(28 / (40 + 12))
    pq = panoptic_quality(true, pred)  # TP 1 (IoU 0.7), FP 1
    assert pq['dq'] == pytest.approx(1 / 1.5) and pq['sq'] == pytest.approx(0.7 / (1 + EPS))
    assert pq['pq'] == pytest.approx(1 / 1.5 * 0.7 / (1 + EPS))
    assert detection_f1(true, pred) == pytest.approx(dict(precision=0.5, recall=1.0, f1=2 / 3))


def test_merge_aji_over_penalises_aji_plus_does_not():
    true = _map((1, *PART_A), (2, *PART_B))
    pred = _map((9, *WHOLE))
    # AJI: both GT pair with the merged prediction, whose 40 px enter the union twice
    assert aji(true, pred) == pytest.approx((28 + 12) / (40 + 40))
    # AJI+: one-to-one, the prediction goes to part A (IoU 0.7 > 0.3); part B's 12 px are unpaired
    assert aji_plus(true, pred) == pytest.approx(28 / (40 + 12))
    pq = panoptic_quality(true, pred)  # TP 1, FN 1
    assert pq['dq'] == pytest.approx(2 / 3) and pq['pq'] == pytest.approx(2 / 3 * 0.7 / (1 + EPS))
    assert detection_f1(true, pred) == pytest.approx(dict(precision=1.0, recall=0.5, f1=2 / 3))


def test_iou_exactly_half_is_not_a_match():
    true = _map((1, *WHOLE))
    pred = _map((1, 0, 4, 0, 5))  # IoU 20 / 40 = 0.5, not > 0.5 (HoVer-Net's strict threshold)
    assert panoptic_quality(true, pred) == dict(dq=0.0, sq=0.0, pq=0.0)
    assert aji(true, pred) == pytest.approx(0.5)


def test_unmatched_and_partly_matched():
    true = _map((1, 0, 4, 0, 4), (2, 6, 10, 0, 4))
    pred = _map((1, 0, 4, 0, 4), (2, 0, 4, 10, 14))  # one exact, one far away
    assert aji(true, pred) == pytest.approx(16 / (16 + 16 + 16))  # + unpaired GT 2 + unpaired prediction 2
    assert aji_plus(true, pred) == pytest.approx(16 / 48)
    pq = panoptic_quality(true, pred)
    assert pq['dq'] == pytest.approx(1 / 2) and pq['sq'] == pytest.approx(1 / (1 + EPS))
    assert detection_f1(true, pred) == pytest.approx(dict(precision=0.5, recall=0.5, f1=0.5))


def test_tie_goes_to_the_lower_prediction_id_in_aji():
    true = _map((1, *WHOLE))
    pred = _map((4, 0, 4, 0, 5), (3, 0, 4, 5, 10))  # two halves, equal IoU: id 3 (lower) is paired
    ov = instance_overlap(true, pred)
    assert list(ov.pred_ids) == [3, 4]
    assert aji(true, pred) == pytest.approx(20 / 60)


def test_empty_ground_truth():
    true = np.zeros((10, 20), np.int64)
    pred = _map((1, *WHOLE))
    assert aji(true, pred) == 0.0 and aji_plus(true, pred) == 0.0
    assert panoptic_quality(true, pred) == dict(dq=0.0, sq=0.0, pq=0.0)
    scores = detection_f1(true, pred)
    assert scores['precision'] == 0.0 and math.isnan(scores['recall']) and scores['f1'] == 0.0


def test_empty_prediction():
    true = _map((1, *WHOLE))
    pred = np.zeros((10, 20), np.int64)
    assert aji(true, pred) == 0.0 and aji_plus(true, pred) == 0.0
    assert panoptic_quality(true, pred)['pq'] == 0.0
    scores = detection_f1(true, pred)
    assert math.isnan(scores['precision']) and scores['recall'] == 0.0 and scores['f1'] == 0.0


def test_both_empty_is_undefined():
    empty = np.zeros((10, 20), np.int64)
    assert math.isnan(aji(empty, empty)) and math.isnan(aji_plus(empty, empty))
    assert all(math.isnan(v) for v in panoptic_quality(empty, empty).values())


def test_multiclass_pq_pannuke_rule():
    true = _map((1, 0, 4, 0, 4), (2, 6, 10, 0, 4), (3, 6, 10, 10, 14))
    pred = _map((1, 0, 4, 0, 4), (2, 6, 10, 0, 4), (3, 0, 4, 16, 20))
    true_cls = {1: 1, 2: 2, 3: 2}
    pred_cls = {1: 1, 2: 1, 3: 3}  # 2 found with the wrong class; 3 is a class-3 false positive
    result = multiclass_pq(true, pred, true_cls, pred_cls, class_ids=[1, 2, 3])
    # class 1: GT {1} vs pred {1, 2}: TP 1 (IoU 1), FP 1 -> DQ 2/3; class 2: GT {2, 3} vs none -> 0;
    # class 3: no GT in this image -> NaN, left out of mPQ
    assert result['class_pq'][1] == pytest.approx(2 / 3 / (1 + EPS))
    assert result['class_pq'][2] == 0.0 and math.isnan(result['class_pq'][3])
    assert result['mpq'] == pytest.approx((2 / 3 / (1 + EPS) + 0) / 2)
    # binary: TP 2 (1-1, 2-2), FN 1, FP 1 -> DQ 2 / 3
    assert result['pq'] == pytest.approx(2 / 3 * 2 / (2 + EPS))


def test_munkres_per_group_equals_full_matrix():
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    n_t, n_p = 30, 25
    dense = np.where(rng.random((n_t, n_p)) < 0.12, rng.random((n_t, n_p)), 0.0)
    rows, cols = np.nonzero(dense)
    chosen = max_iou_matching(rows, cols, dense[rows, cols])
    r, c = linear_sum_assignment(-dense)
    assert dense[rows[chosen], cols[chosen]].sum() == pytest.approx(dense[r, c].sum())
    assert len(set(rows[chosen])) == len(chosen) == len(set(cols[chosen]))


@pytest.mark.parametrize('seed', [0, 1])
def test_equal_to_the_per_instance_reference(seed):
    true, pred = BENCH['dense_pair'](160, 40, seed=seed)
    ref, new = BENCH['reference_metrics'](true, pred), BENCH['mmcell_metrics'](true, pred)
    assert set(ref) == set(new)
    for key in ref:
        assert new[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-12), key


def test_shape_mismatch_and_bad_ids():
    with pytest.raises(ValueError, match='differ in shape'):
        aji(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match='integer ids'):
        aji(np.full((4, 4), 1.5), np.zeros((4, 4), int))


# ------------------------------------------------------------------------------------------------- in the runner
def _sample(img_id, gt, pred_masks, scores, labels, shape=(10, 20)):
    import pycocotools.mask as mask_util

    sample = DetDataSample(metainfo=dict(img_id=img_id, ori_shape=shape))
    instances = []
    for label, box in gt:
        m = np.zeros(shape, np.uint8)
        m[box[0]:box[1], box[2]:box[3]] = 1
        rle = mask_util.encode(np.asfortranarray(m))
        instances.append(dict(bbox=[box[2], box[0], box[3], box[1]], bbox_label=label, mask=rle))
    sample.set_metainfo(dict(instances=instances))
    pred = InstanceData()
    masks = np.zeros((len(pred_masks),) + shape, bool)
    for i, box in enumerate(pred_masks):
        masks[i, box[0]:box[1], box[2]:box[3]] = True
    pred.masks = torch.from_numpy(masks)
    pred.scores = torch.tensor(scores, dtype=torch.float32)
    pred.labels = torch.tensor(labels)
    pred.bboxes = torch.zeros((len(scores), 4))
    sample.pred_instances = pred
    return sample.to_dict()


def test_cell_pathology_metric_in_the_evaluator():
    evaluator = Evaluator(METRICS.build(dict(type='CellPathologyMetric')))  # registered in mmdet's METRICS
    evaluator.dataset_meta = dict(classes=('a', 'b'))
    # image 1: the GT split in two predictions (the low-score third one is dropped by score_thr 0.5);
    # image 2: an exact match (16 px), plus a lower-score prediction over it (25 px) that keeps only the 9 px the
    # higher score did not take: a false positive
    s1 = _sample(1, [(0, WHOLE)], [PART_A, PART_B, (6, 9, 0, 9)], [0.9, 0.8, 0.3], [0, 0, 1])
    s2 = _sample(2, [(1, (5, 9, 5, 9))], [(5, 9, 5, 9), (4, 9, 4, 9)], [0.9, 0.6], [1, 1])
    evaluator.process([s1, s2])
    out = evaluator.evaluate(2)
    assert out['pathology/aji'] == pytest.approx((28 / 52 + 16 / (16 + 9)) / 2)
    assert out['pathology/precision'] == pytest.approx(2 / 4) and out['pathology/recall'] == pytest.approx(1.0)
    pq1 = 1 / 1.5 * 0.7 / (1 + EPS)
    pq2 = 1 / 1.5 * 1 / (1 + EPS)
    assert out['pathology/pq'] == pytest.approx((pq1 + pq2) / 2)
    assert out['pathology/a_pq'] == pytest.approx(pq1) and out['pathology/b_pq'] == pytest.approx(pq2)
    assert out['pathology/mpq'] == pytest.approx((pq1 + pq2) / 2)


def test_cell_pathology_metric_reads_a_coco_ground_truth(tmp_path):
    """``ann_file`` (e.g. a converted test release's test_gt_coco.json) replaces the samples' instances."""
    import json

    import pycocotools.mask as mask_util

    gt_mask = np.zeros((10, 20), np.uint8)
    gt_mask[0:4, 0:10] = 1
    rle = mask_util.encode(np.asfortranarray(gt_mask))
    rle['counts'] = rle['counts'].decode()
    ann_file = tmp_path / 'gt.json'
    ann_file.write_text(json.dumps(dict(
        images=[dict(id=7, file_name='x.tif', height=10, width=20)],
        annotations=[dict(id=1, image_id=7, category_id=1, segmentation=rle, bbox=[0, 0, 10, 4], area=40,
                          iscrowd=0)],
        categories=[dict(id=1, name='nucleus')])))
    metric = METRICS.build(dict(type='CellPathologyMetric', ann_file=str(ann_file), score_thr=0.1))
    metric.dataset_meta = dict(classes=('nucleus',))
    sample = _sample(7, [], [PART_A, PART_B], [0.9, 0.2], [0, 0])  # no instances in the sample itself
    metric.process({}, [sample])
    out = metric.compute_metrics(metric.results)
    assert out['aji'] == pytest.approx(28 / 52)  # score_thr 0.1 keeps the 0.2 split part
    with pytest.raises(FileNotFoundError, match='missing.json: ground-truth annotation file not found'):
        METRICS.build(dict(type='CellPathologyMetric', ann_file=str(tmp_path / 'missing.json')))


def test_dense_masks_of_any_dtype_paint_the_same_label_image():
    from mmcell.structures.label_image import label_image

    masks = np.zeros((3, 10, 20), bool)
    masks[0, 0:4, 0:10] = masks[1, 2:8, 5:15] = masks[2, 6:10, 12:20] = True
    scores, labels = [0.9, 0.8, 0.7], [0, 1, 0]
    expected, _, _ = label_image(masks, scores, labels, 10, 20)
    assert (expected == 1).sum() == 40 and (expected == 2).sum() == 60 - 10  # overlaps go to the higher score
    for variant in (masks.astype(np.uint8) * 255, masks.astype(np.float32) * 0.9, torch.from_numpy(masks)):
        np.testing.assert_array_equal(label_image(variant, scores, labels, 10, 20)[0], expected)
