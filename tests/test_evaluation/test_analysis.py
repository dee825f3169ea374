"""Matching, per-class precision/recall and the score sweep, on answers known by construction (the class confusion:
test_class_scores.py)."""
from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from mmcell import visualization
from mmcell.evaluation.functional import coco as analysis
from mmcell.structures.rle import encode_mask


@pytest.fixture(scope='module')
def gt(synthetic_hw3):
    return json.loads((synthetic_hw3 / 'test_gt_coco.json').read_text())


def _false_positive(gt: dict, score: float) -> dict:
    """A detection on an empty corner of the first image (overlaps no GT cell)."""
    img = gt['images'][0]
    h, w = img['height'], img['width']
    occupied = np.zeros((h, w), bool)
    for a in gt['annotations']:
        if a['image_id'] == img['id']:
            occupied |= mask_utils.decode({'size': [h, w], 'counts': a['segmentation']['counts'].encode()}) > 0
    for y in range(0, h - 4):
        for x in range(0, w - 4):
            if not occupied[y:y + 4, x:x + 4].any():
                mask = np.zeros((h, w), bool)
                mask[y:y + 4, x:x + 4] = True
                return dict(image_id=img['id'], category_id=1, score=score, bbox=[x, y, 4.0, 4.0],
                            segmentation=encode_mask(mask))
    raise AssertionError('no empty corner in the synthetic image')


def test_precision_recall(gt):
    results = analysis.gt_as_results(gt, score=0.9)
    counts = {k: sum(a['category_id'] == k for a in gt['annotations']) for k in range(1, 5)}
    src = max(counts, key=counts.get)  # relabel a few cells of the most common class
    dst = src % 4 + 1
    moved = 0
    for r in results:
        if r['category_id'] == src and moved < 3:
            r['category_id'] = dst
            moved += 1
    results.append(_false_positive(gt, 0.95))

    rows = {r['class']: r for r in analysis.per_class_precision_recall(gt, results)}
    names = analysis.DEFAULT_CLASSES
    assert rows[names[src - 1]]['recall'] == pytest.approx((counts[src] - moved) / counts[src])
    assert rows[names[src - 1]]['fn'] == moved
    assert rows[names[dst - 1]]['fp'] == moved + (dst == 1)
    assert rows[names[dst - 1]]['tp'] == counts[dst]

    m = analysis.match_detections(gt, results)
    assert m.det_matched.sum() == len(gt['annotations']) - moved
    assert not m.det_matched[-1] and m.det_iou[-1] == 0.0


def test_score_sweep_and_plots(gt, tmp_path):
    results = analysis.gt_as_results(gt, score=0.5)
    fps = [_false_positive(gt, 0.9)]  # a confident false positive lowers AP50 below 1
    sweep = analysis.score_threshold_sweep(gt, results + fps, [0.0, 0.7, 0.95])
    assert [r['num_detections'] for r in sweep] == [len(results) + 1, 1, 0]
    assert 0.0 < sweep[0]['ap50'] < 1.0
    assert sweep[0]['ap50'] == pytest.approx(analysis.contest_ap50(gt, results + fps))
    assert sweep[1]['ap50'] == 0.0 and sweep[2]['ap50'] == 0.0
    assert analysis.contest_ap50(gt, results) == pytest.approx(1.0)
    m = analysis.match_detections(gt, results + fps)
    scores = np.array([r['score'] for r in results + fps])
    png = visualization.plot_score_histogram(scores, m.det_matched, str(tmp_path / 'hist.png'), sweep=sweep)
    conf_png = visualization.plot_confusion(np.eye(5, dtype=np.int64), analysis.DEFAULT_CLASSES,
                                            str(tmp_path / 'conf.png'), 'title')
    for path in (png, conf_png):
        with open(path, 'rb') as fh:
            assert fh.read(8) == b'\x89PNG\r\n\x1a\n'
    assert '| score_thr |' in analysis.format_table(sweep)
