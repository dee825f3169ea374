"""Scoring label images: COCO RLE straight from a crop, and a label image + class map as COCO GT / results."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest

from mmcell.evaluation.functional.coco import contest_ap50, label_image_to_coco
from mmcell.structures.rle import crop_rle


def test_crop_rle_equals_encoding_the_full_mask():
    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(3, 40, 2))
        ch, cw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        crop = rng.random((ch, cw)) > 0.4
        x1, y1 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        full = np.zeros((h, w), np.uint8)
        full[y1:y1 + ch, x1:x1 + cw] = crop
        assert mask_util.decode(crop_rle(crop, x1, y1, h, w)).tolist() == full.tolist()
        assert crop_rle(crop, x1, y1, h, w)['counts'] == mask_util.encode(np.asfortranarray(full))['counts']


def test_label_image_to_coco_round_trip_and_scores():
    ids = np.zeros((30, 40), np.uint32)
    classes = np.zeros_like(ids, dtype=np.uint8)
    ids[2:8, 3:9], classes[2:8, 3:9] = 5, 2
    ids[10:20, 10:30], classes[10:20, 10:30] = 9, 4
    gt, results = label_image_to_coco(ids, classes, {5: 0.7})
    assert [a['category_id'] for a in gt['annotations']] == [2, 4]
    assert [a['area'] for a in gt['annotations']] == [36.0, 200.0]
    assert [r['score'] for r in results] == [0.7, 1.0]
    assert contest_ap50(gt, results, 100) == pytest.approx(1.0)
    shifted = np.roll(ids, 5, axis=1)  # the small one drops below IoU 0.5, the big one stays above
    _, moved = label_image_to_coco(shifted, np.roll(classes, 5, axis=1))
    assert 0.1 < contest_ap50(gt, moved, 100) < 0.9
