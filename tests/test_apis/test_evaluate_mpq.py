"""mPQ and the PQ of each class in the class-aware scoring of the CV folds and the peers
(``mmcell.apis.evaluate.evaluate_label_images`` / ``score_tile_samples``), on two hand-made 20 x 20 images whose
figures are worked out by hand below (HoVer-Net / PanNuke: per image, then the mean over images)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from mmcell.apis.evaluate import evaluate_label_images

CLASSES = ['other', 'inflammatory', 'epithelial', 'spindle']
EPS = 1e-6  # HoVer-Net's SQ = IoU sum / (TP + 1e-6)


def box(labels: np.ndarray, value: int, rows: tuple, cols: tuple) -> None:
    labels[rows[0]:rows[1], cols[0]:cols[1]] = value


def write_gt(root: Path, name: str, cells: list) -> None:
    """An HW3 sample: ``cells`` = [(class 1..4, rows, cols)] painted into ``class<K>.tif``."""
    folder = root / 'train' / name
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / 'image.tif', np.full((20, 20, 3), 200, np.uint8))
    maps = {}
    for k, (cls, rows, cols) in enumerate(cells, start=1):
        box(maps.setdefault(cls, np.zeros((20, 20), np.uint16)), k, rows, cols)
    for cls, labels in maps.items():
        tifffile.imwrite(folder / f'class{cls}.tif', labels)


def write_pred(folder: Path, name: str, cells: list) -> None:
    """A peer's label image, scores and classes: ``cells`` = [(class 1..4, rows, cols)], every score 0.9."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.zeros((20, 20), np.uint32)
    for k, (_, rows, cols) in enumerate(cells, start=1):
        box(labels, k, rows, cols)
    tifffile.imwrite(folder / f'{name}_labels.tif', labels)
    (folder / f'{name}_scores.json').write_text(json.dumps({k: 0.9 for k in range(1, len(cells) + 1)}))
    (folder / f'{name}_classes.json').write_text(json.dumps({k: c[0] for k, c in enumerate(cells, start=1)}))


def test_mpq_bpq_and_class_pq_by_hand(tmp_path):
    """Image A: GT other a1 (rows 2-5, cols 2-5, 16 px) and inflammatory a2 (rows 10-13, cols 10-13);
    predicted: a1 exactly as other (IoU 1); a2 one column to the right as inflammatory (4 x 3 = 12 px shared,
    union 20: IoU 0.6); a false inflammatory (9 px) and a false spindle (9 px) where there is no GT.
    Image B: GT inflammatory b1 and epithelial b2 (the same two squares); predicted: both exactly, both epithelial.

    bPQ (classes ignored), per image:
      A: TP 2 (IoU 1, 0.6), FP 2, FN 0: DQ = 2 / (2 + 1) = 2/3, SQ = 1.6 / (2 + eps) ~ 0.8, PQ_A = 0.5333
      B: TP 2 (IoU 1, 1), FP 0, FN 0: DQ 1, SQ = 2 / (2 + eps) ~ 1, PQ_B = 1
      bPQ = (PQ_A + PQ_B) / 2 = 0.7667
    PQ per class and image (NaN where the image has no GT of the class):
      A other: TP 1 -> 1. A inflammatory: TP 1 (IoU 0.6), FP 1 -> DQ 1 / 1.5 = 2/3, SQ 0.6, PQ 0.4.
      A spindle: no GT -> NaN (its false positive is not charged: the per-image rule).
      B inflammatory: TP 0, FN 1 -> 0. B epithelial: TP 1 (IoU 1) + FP 1 (b1 called epithelial) -> 2/3.
      PQ other = 1, PQ inflammatory = (0.4 + 0) / 2 = 0.2, PQ epithelial = 2/3, PQ spindle = NaN (no GT at all)
      mPQ = mean over images of each image's mean: A (1 + 0.4) / 2 = 0.7, B (0 + 2/3) / 2 = 1/3,
      mPQ = (0.7 + 1/3) / 2 = 0.5167
    """
    a1, a2 = ((2, 6), (2, 6)), ((10, 14), (10, 14))
    write_gt(tmp_path / 'data', 'A', [(1, *a1), (2, *a2)])
    write_gt(tmp_path / 'data', 'B', [(2, *a1), (3, *a2)])
    write_pred(tmp_path / 'pred', 'A', [(1, *a1), (2, (10, 14), (11, 15)), (2, (16, 19), (2, 5)),
                                        (4, (16, 19), (10, 13))])
    write_pred(tmp_path / 'pred', 'B', [(3, *a1), (3, *a2)])
    out = evaluate_label_images(tmp_path / 'data', ['A', 'B'], tmp_path / 'pred', classes=CLASSES)

    pq_a = (2 / 3) * (1.6 / (2 + EPS))
    pq_b = 2 / (2 + EPS)
    assert out['PQ'] == pytest.approx((pq_a + pq_b) / 2)  # bPQ
    assert out['PQ'] == pytest.approx(0.7667, abs=1e-4)
    assert out['PQ other'] == pytest.approx(1 / (1 + EPS))
    assert out['PQ inflammatory'] == pytest.approx((2 / 3 * 0.6 / (1 + EPS) + 0) / 2)
    assert out['PQ epithelial'] == pytest.approx(2 / 3 / (1 + EPS))
    assert math.isnan(out['PQ spindle'])
    mpq_a = (1 / (1 + EPS) + 2 / 3 * 0.6 / (1 + EPS)) / 2
    mpq_b = (0 + 2 / 3 / (1 + EPS)) / 2
    assert out['mPQ'] == pytest.approx((mpq_a + mpq_b) / 2)
    assert out['mPQ'] == pytest.approx(0.5167, abs=1e-4)
    # the order the tables print them: the class-agnostic figures, the class-aware AP50s, then mPQ and PQ per class
    assert list(out)[-5:] == ['mPQ', 'PQ other', 'PQ inflammatory', 'PQ epithelial', 'PQ spindle']


def test_without_classes_no_mpq(tmp_path):
    """One class (MoNuSeg's peers): PQ is the binary PQ and no class figure appears."""
    write_gt(tmp_path / 'data', 'A', [(1, (2, 6), (2, 6))])
    write_pred(tmp_path / 'pred', 'A', [(1, (2, 6), (3, 7))])  # 12 px shared of a 20 px union: IoU 0.6
    out = evaluate_label_images(tmp_path / 'data', ['A'], tmp_path / 'pred')
    assert set(out) == {'AP50', 'AP', 'AJI', 'AJI+', 'PQ'}
    assert out['PQ'] == pytest.approx(0.6 / (1 + EPS))  # DQ 1 (TP 1), SQ 0.6
