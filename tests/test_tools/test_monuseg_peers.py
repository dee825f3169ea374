"""The scoring half of benchmarks/monuseg_vs_peers.py, on the synthetic HW3 set.

The peers' figures come from label images (``<name>_labels.tif`` + ``<name>_scores.json``), the way the Cellpose and
StarDist sides hand them over, scored by ``mmcell.apis.evaluate.evaluate_label_images``. The ground truth itself,
merged by Cellpose's own reader (``cellpose_train_predict.read_sample``, which also builds its training labels), must
score 1 on every figure; the same cells with half of them dropped must not.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from mmcell.apis.evaluate import evaluate_label_images, evaluate_tiles
from tests.conftest import REPO, load_script


def write_peer(folder: Path, name: str, labels: np.ndarray) -> None:
    tifffile.imwrite(folder / f'{name}_labels.tif', labels.astype(np.uint32))
    ids = np.unique(labels[labels > 0])
    (folder / f'{name}_scores.json').write_text(json.dumps({int(i): 1.0 - 1e-4 * k for k, i in enumerate(ids)}))


@pytest.fixture(scope='module')
def modules():
    return load_script('benchmarks/monuseg_vs_peers.py'), load_script('benchmarks/cellpose_train_predict.py')


def test_ground_truth_as_peer_scores_one(synthetic_hw3, tmp_path, modules):
    bench, cellpose_side = modules
    names = sorted(p.name for p in (synthetic_hw3 / 'train').iterdir())[:3]
    total = 0
    for name in names:
        img, labels = cellpose_side.read_sample(synthetic_hw3 / 'train' / name)
        assert img.dtype == np.uint8 and img.shape == labels.shape + (3, )
        total += len(np.unique(labels[labels > 0]))
        write_peer(tmp_path, name, labels)
    assert total > 10
    figures = evaluate_label_images(synthetic_hw3, names, tmp_path)
    assert figures == pytest.approx(dict(AP50=1.0, AP=1.0, AJI=1.0, **{'AJI+': 1.0}, PQ=1.0), abs=1e-6)


def test_missing_cells_lower_every_figure(synthetic_hw3, tmp_path, modules):
    bench, cellpose_side = modules
    names = sorted(p.name for p in (synthetic_hw3 / 'train').iterdir())[:3]
    for name in names:
        _, labels = cellpose_side.read_sample(synthetic_hw3 / 'train' / name)
        labels[labels % 2 == 0] = 0  # every other cell missed
        write_peer(tmp_path, name, labels)
    figures = evaluate_label_images(synthetic_hw3, names, tmp_path)
    # recall ~1/2 at full precision: AP50 about 0.5; AJI/PQ well below 1
    assert 0.3 < figures['AP50'] < 0.7
    assert figures['AJI'] < 0.8 and figures['PQ'] < 0.8


def test_mmcell_side_and_figure(trained_quickstart, tmp_path, modules):
    """The recipe's half: predictions scored by the same code, label images saved, outlines drawn for both."""
    import matplotlib.image as mpimg

    bench, _ = modules
    root = Path(trained_quickstart.data_root)
    names = sorted(p.name for p in (root / 'train').iterdir())[:2]
    figures = evaluate_tiles(trained_quickstart.config, trained_quickstart.checkpoint, root, names,
                             save_dir=tmp_path, class_aware=False)  # the peers' figures: one class (MoNuSeg)
    assert set(figures) == {'AP50', 'AP', 'AJI', 'AJI+', 'PQ'}
    assert all(0.0 <= v <= 1.0 for v in figures.values()) and figures['AP50'] >= figures['AP']
    for name in names:
        labels = tifffile.imread(tmp_path / f'{name}_labels.tif')
        image = tifffile.imread(root / 'train' / name / 'image.tif')
        assert labels.dtype == np.uint32 and labels.shape == image.shape[:2]
    png = bench.comparison_figure(root, names, {'mmcell': tmp_path}, tmp_path / 'comparison.png', size=64)
    img = mpimg.imread(png)
    assert img.shape[0] > 300 and img.shape[1] > 300
    green = (img[..., 1] > 0.9) & (img[..., 0] < 0.1) & (img[..., 2] < 0.1)
    assert green.sum() > 20  # the ground truth's outlines are drawn


def test_peers_have_their_own_venvs_and_sides(modules):
    """Every peer runs in a gitignored venv of its own with pinned requirements, through a side script that imports
    neither mmcell nor torch-side mmdet (StarDist's imports no torch at all: TensorFlow and torch stay apart)."""
    bench, _ = modules
    assert set(bench.PEERS) == {'cellpose', 'stardist'}
    ignored = (REPO / '.gitignore').read_text().split()
    for venv, spec, script, _ in bench.PEERS.values():
        assert f'{venv.name}/' in ignored and all('==' in req for req in spec)
        text = (REPO / script).read_text()
        assert 'import mmcell' not in text and 'from mmcell' not in text and 'mmdet' not in text.split('"""')[2]
    assert 'import torch' not in (REPO / 'benchmarks' / 'stardist_train_predict.py').read_text()


STARDIST_PYTHON = REPO / '.venv-stardist' / 'bin' / 'python'


@pytest.mark.skipif(not STARDIST_PYTHON.exists(), reason='.venv-stardist not created (monuseg_vs_peers.py makes it)')
def test_stardist_side_trains_predicts_and_is_scored(synthetic_hw3, tmp_path):
    """The StarDist side for real, in its venv: a few training batches from scratch, label images + object
    probabilities for the held-out tiles, scored by the same code as mmcell."""
    import subprocess

    names = sorted(p.name for p in (synthetic_hw3 / 'train').iterdir())
    val = names[:2]
    proc = subprocess.run([str(STARDIST_PYTHON), 'benchmarks/stardist_train_predict.py', str(synthetic_hw3),
                           str(tmp_path), '--val', *val, '--steps', '3', '--patch', '96', '--batch-size', '2'],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    timing = json.loads((tmp_path / 'timing.json').read_text())
    assert timing['iterations'] == 3 and set(timing['predict_s']) == set(val)
    for name in val:
        labels = tifffile.imread(tmp_path / f'{name}_labels.tif')
        image = tifffile.imread(synthetic_hw3 / 'train' / name / 'image.tif')
        assert labels.dtype == np.uint32 and labels.shape == image.shape[:2]
        scores = json.loads((tmp_path / f'{name}_scores.json').read_text())
        assert set(map(int, scores)) == set(np.unique(labels[labels > 0]).tolist())
        assert all(0.0 <= s <= 1.0 for s in scores.values())
    figures = evaluate_label_images(synthetic_hw3, val, tmp_path)
    assert set(figures) == {'AP50', 'AP', 'AJI', 'AJI+', 'PQ'} and all(0.0 <= v <= 1.0 for v in figures.values())
