"""benchmarks/consep_class_thresholds.py: per-class score thresholds chosen on held-out predictions, on a hand-made
patch (no model), and benchmarks/consep_rescore.py's rule for adding figures to a kept fold file."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest

from tests.conftest import load_script


@pytest.fixture(scope='module')
def script():
    return load_script('benchmarks/consep_class_thresholds.py')


def _square(r: int, c: int) -> np.ndarray:
    out = np.zeros((64, 64), bool)
    out[r:r + 6, c:c + 6] = True
    return out


def patch() -> dict:
    """GT: nucleus 1 of class 1 at (5, 5), nucleus 2 of class 2 at (40, 40). Detections: nucleus 1 as class 1 at
    score 0.3, a false class-2 one at (5, 40) scoring 0.4, nucleus 2 as class 2 at 0.8.

    F_c (HoVer-Net, pooled): a missed nucleus of class c is FN_d,c, an unpaired detection of class c FP_d,c.
      one threshold t <= 0.3: class 1 TP -> F_1 = 1; class 2 TP + FP -> F_2 = 2 / (2 + 1) = 2/3; mean 5/6
      0.3 < t <= 0.4: F_1 = 0 (missed), F_2 = 2/3: mean 1/3;  0.4 < t <= 0.8: F_1 = 0, F_2 = 1: mean 1/2
      -> global 0.3 (5/6; ties broken towards 0.5). Per class from there: class 1 keeps 0.3 (F_1 = 1);
      class 2 scores F_2 = 1 for 0.4 < t <= 0.8, the closest to 0.3 on the grid is 0.45. With (0.3, 0.45): mean 1.
    """
    true_map = np.zeros((64, 64), np.int64)
    true_map[_square(5, 5)] = 1
    true_map[_square(40, 40)] = 2
    dets = [(_square(5, 5), 0.3, 0), (_square(5, 40), 0.4, 1), (_square(40, 40), 0.8, 1)]
    masks = [mask_util.encode(np.asfortranarray(m.astype(np.uint8))) for m, _, _ in dets]
    return dict(name='p', true_map=true_map, true_cls=np.array([0, 1, 2]), masks=masks,
                scores=np.array([d[1] for d in dets]), labels=np.array([d[2] for d in dets]), height=64, width=64)


def test_global_and_per_class_thresholds_by_hand(script):
    cache = script.Cache({0: [patch()], 1: [patch()]}, num_classes=2)
    glob, per_class = script.choose(cache, [0, 1], ['a', 'b'])
    assert glob == 0.3 and per_class == [0.3, 0.45]
    at_global = script.figures_of(cache.get(0, [glob] * 2), ['a', 'b'])
    at_class = script.figures_of(cache.get(0, per_class), ['a', 'b'])
    assert at_global['mean F_c'] == pytest.approx(5 / 6) and at_class['mean F_c'] == pytest.approx(1.0)
    assert at_global['F_c b'] == pytest.approx(2 / 3) and at_class['F_c b'] == pytest.approx(1.0)
    # the false class-2 nucleus costs bPQ (DQ 2 / 2.5) at 0.3, not at (0.3, 0.45)
    assert at_global['bPQ'] == pytest.approx(0.8, abs=1e-5) and at_class['bPQ'] == pytest.approx(1.0, abs=1e-5)
    assert script.figures_of(cache.get(0, [0.5, 0.5]), ['a', 'b'])['F_c a'] == 0.0  # the default misses nucleus 1


def test_rescore_adds_only_missing_figures():
    merge = load_script('benchmarks/consep_rescore.py').merge_figures
    merged, diff = merge({'AP50': 0.5, 'PQ': float('nan')}, {'AP50': 0.5 + 1e-9, 'PQ': float('nan'), 'mPQ': 0.2})
    assert list(merged) == ['AP50', 'PQ', 'mPQ'] and merged['AP50'] == 0.5 and merged['mPQ'] == 0.2
    assert diff == pytest.approx(1e-9)


def test_kept_predictions_score_as_the_predictions(tmp_path):
    """consep_rescore.py's kept detections (save_predictions -> load_predictions) give the same figures as the
    predictions they were saved from, a patch without detections (an empty dense mask tensor) included."""
    import tifffile
    import torch

    from mmcell.apis.evaluate import score_tile_samples, tile_ground_truth

    rescore = load_script('benchmarks/consep_rescore.py')
    names = ['a', 'b']
    for name in names:
        (tmp_path / 'train' / name).mkdir(parents=True)
        tifffile.imwrite(tmp_path / 'train' / name / 'image.tif', np.zeros((64, 64, 3), np.uint8))
        labels = np.zeros((64, 64), np.uint16)
        labels[_square(5, 5)] = 1
        tifffile.imwrite(tmp_path / 'train' / name / 'class2.tif', labels)
    dets = patch()
    rles = [dict(m, counts=m['counts']) for m in dets['masks']]
    samples = [dict(tile_ground_truth(tmp_path, 'a', 0, class_aware=True), pred_instances=dict(
                   bboxes=torch.tensor([[5, 5, 11, 11], [40, 5, 46, 11], [40, 40, 46, 46]], dtype=torch.float32),
                   scores=torch.tensor(dets['scores'], dtype=torch.float32), labels=torch.tensor(dets['labels']),
                   masks=rles)),
               dict(tile_ground_truth(tmp_path, 'b', 1, class_aware=True), pred_instances=dict(
                   bboxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.int64),
                   masks=torch.zeros(0, 64, 64)))]
    rescore.save_predictions(samples, names, tmp_path / 'preds' / 'fold0.json')
    loaded = rescore.load_predictions(tmp_path / 'preds' / 'fold0.json', tmp_path)
    classes = ('a', 'b', 'c', 'd')
    before = score_tile_samples(samples, 0.25, classes=classes)
    after = score_tile_samples(loaded, 0.25, classes=classes)
    assert before.keys() == after.keys()
    for key in before:
        assert after[key] == pytest.approx(before[key], nan_ok=True), key
