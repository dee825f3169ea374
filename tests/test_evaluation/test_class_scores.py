"""Class-aware scoring: HoVer-Net's centroid pairing, F_d / F_c / type accuracy, the confusion matrix, mPQ / bPQ
on hand-built label maps with known answers; the metric's keys, ``class_confusion.py`` and ``tools/test.py``."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS
from mmdet.structures import DetDataSample
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

from mmcell.evaluation.functional.classification import (
    classification_scores,
    confusion_matrix,
    label_centroids,
    pair_centroids,
)
from mmcell.evaluation.functional.coco import gt_as_results
from mmcell.evaluation.functional.pathology import coco_figures, image_figures, summarize_figures

EPS = 1.0e-6  # HoVer-Net's SQ denominator TP + 1e-6


def _map(*boxes, shape=(20, 40)):
    """Label map and class per id from (id, class, r0, r1, c0, c1) boxes (half-open)."""
    out = np.zeros(shape, np.int64)
    cls = np.zeros(max([b[0] for b in boxes], default=0) + 1, np.int64)
    for i, c, r0, r1, c0, c1 in boxes:
        out[r0:r1, c0:c1] = i
        cls[i] = c
    return out, cls


# GT: 1 (class 1), 2 and 3 (class 2), 4 (class 3). Predictions: 1 right, 2 found as class 1, 3 right, GT 4 missed,
# and a class-3 false positive far from everything.
TRUE = _map((1, 1, 0, 4, 0, 4), (2, 2, 0, 4, 10, 14), (3, 2, 10, 14, 0, 4), (4, 3, 10, 14, 20, 24))
PRED = _map((1, 1, 0, 4, 0, 4), (2, 1, 0, 4, 10, 14), (3, 2, 10, 14, 0, 4), (4, 3, 10, 14, 34, 38))
EXPECTED_CONFUSION = np.array([[1, 0, 0, 0],
                               [1, 1, 0, 0],
                               [0, 0, 0, 1],
                               [0, 0, 1, 0]])


def test_centroids_and_pairing():
    ids, xy = label_centroids(TRUE[0])
    assert ids.tolist() == [1, 2, 3, 4]
    assert xy.tolist() == [[1.5, 1.5], [11.5, 1.5], [1.5, 11.5], [21.5, 11.5]]
    # HoVer-Net's pair_coordinates: Munkres on the whole distance matrix first, then pairs beyond the radius go.
    # GT a (0) and b (10) vs predictions at 9 and 21: the total-distance optimum pairs a-9 (9 px) and b-21 (11 px)
    # rather than b-9 (1 px), so with radius 10 only a-9 stays.
    paired, un_t, un_p = pair_centroids([[0, 0], [10, 0]], [[9, 0], [21, 0]], radius=10)
    assert paired.tolist() == [[0, 0]] and un_t.tolist() == [1] and un_p.tolist() == [1]
    paired, un_t, un_p = pair_centroids([[0, 0], [10, 0]], [[9, 0], [21, 0]], radius=12)
    assert paired.tolist() == [[0, 0], [1, 1]] and not len(un_t) and not len(un_p)
    paired, un_t, un_p = pair_centroids(np.zeros((0, 2)), [[1, 1]])
    assert paired.shape == (0, 2) and un_p.tolist() == [0]


def test_confusion_f1d_f1c_mpq_bpq_on_hand_built_maps():
    fig = image_figures(*TRUE, *PRED, num_classes=3)
    assert (fig['confusion'] == EXPECTED_CONFUSION).all()
    out = summarize_figures([fig], num_classes=3)
    # pairs 3 (TP), one unpaired prediction (FP) and one unpaired GT (FN): F_d = 6 / 8
    assert out['f1_d'] == pytest.approx(0.75) and out['accuracy'] == pytest.approx(2 / 3)
    # class 1: TP 1, FP_c 1 (GT 2 called 1) -> 2 / (2 + 2); class 2: TP 1, FN_c 1 -> 2 / 4;
    # class 3: no pair, FP_d 1 + FN_d 1 -> 0
    assert out['f1_c'] == pytest.approx({1: 0.5, 2: 0.5, 3: 0.0})
    # bPQ: TP 3 (IoU 1), FP 1, FN 1
    assert out['pq'] == pytest.approx(3 / 4 * 3 / (3 + EPS))
    # per class (PanNuke): 1: GT {1} vs {1, 2} -> DQ 2/3; 2: GT {2, 3} vs {3} -> DQ 2/3; 3: GT {4} vs {4'} -> 0
    assert out['class_pq'] == pytest.approx({1: 2 / 3 / (1 + EPS), 2: 2 / 3 / (1 + EPS), 3: 0.0})
    assert out['mpq'] == pytest.approx(4 / 9 / (1 + EPS))
    # one class: no class-aware figures, the confusion is TP / FN / FP
    agnostic = summarize_figures([image_figures(*TRUE, *PRED, num_classes=1)], num_classes=1)
    assert 'mpq' not in agnostic and 'f1_c' not in agnostic
    assert agnostic['confusion'].tolist() == [[3, 1], [1, 0]] and agnostic['f1_d'] == pytest.approx(0.75)


def _hovernet_f1_type(paired_true, paired_pred, unpaired_true, unpaired_pred, type_id):
    """HoVer-Net's ``_f1_type`` (compute_stats.py, weights 2, 2, 1, 1) on pooled type arrays, as published."""
    sel = (paired_true == type_id) | (paired_pred == type_id)
    pt, pp = paired_true[sel], paired_pred[sel]
    tp = ((pt == type_id) & (pp == type_id)).sum()
    tn = ((pt != type_id) & (pp != type_id)).sum()
    fp = ((pt != type_id) & (pp == type_id)).sum()
    fn = ((pt == type_id) & (pp != type_id)).sum()
    fp_d, fn_d = (unpaired_pred == type_id).sum(), (unpaired_true == type_id).sum()
    return 2 * (tp + tn) / (2 * (tp + tn) + 2 * fp + 2 * fn + fp_d + fn_d)


def test_f1c_equals_hovernet_on_random_points():
    rng = np.random.default_rng(0)
    true_xy, pred_xy = rng.uniform(0, 200, (80, 2)), rng.uniform(0, 200, (70, 2))
    tc, pc = rng.integers(1, 5, 80), rng.integers(1, 5, 70)
    paired, un_t, un_p = pair_centroids(true_xy, pred_xy)
    assert 0 < len(paired) < 70
    scores = classification_scores(confusion_matrix(tc, pc, paired, un_t, un_p, 4))
    for k in range(1, 5):
        ref = _hovernet_f1_type(tc[paired[:, 0]], pc[paired[:, 1]], tc[un_t], pc[un_p], k)
        assert scores['f1_c'][k] == pytest.approx(ref, rel=1e-12)
    assert scores['f1_d'] == pytest.approx(2 * len(paired) / (2 * len(paired) + len(un_t) + len(un_p)))
    with pytest.raises(ValueError, match='outside 1..4'):
        confusion_matrix([5], [1], np.zeros((0, 2)), [0], [0], 4)


def _sample(img_id, gt, preds, shape=(20, 40)):
    import pycocotools.mask as mask_util

    sample = DetDataSample(metainfo=dict(img_id=img_id, ori_shape=shape))
    instances = []
    for label, (r0, r1, c0, c1) in gt:
        m = np.zeros(shape, np.uint8)
        m[r0:r1, c0:c1] = 1
        instances.append(dict(bbox=[c0, r0, c1, r1], bbox_label=label, mask=mask_util.encode(np.asfortranarray(m))))
    sample.set_metainfo(dict(instances=instances))
    pred = InstanceData()
    masks = np.zeros((len(preds),) + shape, bool)
    for i, (_, (r0, r1, c0, c1)) in enumerate(preds):
        masks[i, r0:r1, c0:c1] = True
    pred.masks = torch.from_numpy(masks)
    pred.scores = torch.full((len(preds), ), 0.9)
    pred.labels = torch.tensor([label for label, _ in preds], dtype=torch.int64)
    pred.bboxes = torch.zeros((len(preds), 4))
    sample.pred_instances = pred
    return sample.to_dict()


def _boxes(label_map_and_cls):
    labels, cls = label_map_and_cls
    out = []
    for i in range(1, len(cls)):
        rows, cols = np.nonzero(labels == i)
        out.append((int(cls[i]) - 1, (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)))
    return out


def test_metric_keys_and_confusion():
    metric = METRICS.build(dict(type='CellPathologyMetric'))
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = dict(classes=('a', 'b', 'c'))
    evaluator.process([_sample(1, _boxes(TRUE), _boxes(PRED))])
    out = evaluator.evaluate(1)
    assert out['pathology/hovernet_f1d'] == pytest.approx(0.75)
    assert out['pathology/type_acc'] == pytest.approx(2 / 3)
    assert [out[f'pathology/{c}_f1c'] for c in 'abc'] == pytest.approx([0.5, 0.5, 0.0])
    assert out['pathology/mpq'] == pytest.approx(4 / 9 / (1 + EPS))
    assert (metric.confusion == EXPECTED_CONFUSION).all() and metric.classes == ('a', 'b', 'c')

    single = Evaluator(METRICS.build(dict(type='CellPathologyMetric')))
    single.dataset_meta = dict(classes=('nucleus', ))
    single.process([_sample(1, [(0, b) for _, b in _boxes(TRUE)], [(0, b) for _, b in _boxes(PRED)])])
    keys = set(single.evaluate(1))
    assert 'pathology/hovernet_f1d' in keys and 'pathology/pq' in keys
    assert not any(k.endswith(('mpq', '_f1c', 'type_acc', 'nucleus_pq')) for k in keys)


def test_coco_figures_and_class_confusion_tool(synthetic_hw3, tmp_path):
    from conftest import load_script

    gt = json.loads((synthetic_hw3 / 'test_gt_coco.json').read_text())
    results = gt_as_results(gt, score=0.9)
    moved = next(r for r in results if r['category_id'] == 1)
    moved['category_id'] = 2  # one class-1 nucleus predicted as class 2
    fig = coco_figures(gt, results, score_thr=0.5, num_classes=4)
    counts = np.bincount([a['category_id'] for a in gt['annotations']], minlength=5)[1:]
    assert fig['f1_d'] == 1.0 and fig['confusion'][:4, 4].sum() == 0 and fig['confusion'][4].sum() == 0
    assert fig['confusion'][0, 1] == 1 and np.diag(fig['confusion'])[:4].tolist() == [counts[0] - 1,
                                                                                       *counts[1:]]
    assert fig['f1_c'][1] == pytest.approx(2 * (counts[0] - 1) / (2 * (counts[0] - 1) + 2))

    (tmp_path / 'res.json').write_text(json.dumps(results))
    load_script('tools/analysis_tools/class_confusion.py').main(
        ['--results', str(tmp_path / 'res.json'), '--gt', str(synthetic_hw3 / 'test_gt_coco.json'),
         '--out-dir', str(tmp_path / 'out')])
    report = (tmp_path / 'out' / 'class_report.md').read_text()
    assert '| contest_AP50 |' in report and '| F_c |' in report and 'gt \\ pred' in report
    assert (tmp_path / 'out' / 'class_confusion.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'F_d 1.0000' in (tmp_path / 'out' / 'class_confusion.md').read_text()


def test_tools_test_writes_the_confusion(trained_quickstart, tmp_path):
    from conftest import run_tool

    work = tmp_path / 'work'
    proc = run_tool(sys.executable, 'tools/test.py', trained_quickstart.config, trained_quickstart.checkpoint,
                    '--work-dir', str(work), '--cfg-options', 'test_dataloader.dataset.indices=2')
    log = proc.stdout + proc.stderr
    assert 'coco/segm_mAP_50' in log and 'pathology/mpq' in log and 'pathology/hovernet_f1d' in log
    assert 'class confusion of matched nuclei' in log
    pngs = list(work.glob('*/class_confusion.png'))
    assert len(pngs) == 1 and (pngs[0].parent / 'class_confusion.md').is_file()
