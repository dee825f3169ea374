"""The synthetic generator is calibrated to real 40x H&E, measured by tissue_statistics (checked by hand first)."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import run_tool
from hw3_builders import write_sample

from mmcell.datasets.hw3_annotations import load_train_annotations
from mmcell.datasets.stain import hed_to_rgb, rgb_to_hed
from mmcell.datasets.statistics import format_tissue_comparison, tissue_statistics
from mmcell.synthetic.hw3 import make_synthetic_hw3

MPP = 0.25


@pytest.fixture(scope='module')
def calibrated(tmp_path_factory):
    root = make_synthetic_hw3(tmp_path_factory.mktemp('calibrated'), num_train=6, num_test=0, seed=3,
                              min_size=256, max_size=320)
    samples = load_train_annotations(root, cache_file=None, progress=False)
    return root, samples, tissue_statistics(samples, MPP)


def test_hed_round_trip():
    rgb = np.random.default_rng(0).integers(1, 256, (8, 9, 3), dtype=np.uint8)
    back = np.clip(hed_to_rgb(rgb_to_hed(rgb)) + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(back.astype(int) - rgb).max() <= 1
    # pure haematoxylin density 1.0 unmixes to (1, 0, 0)
    assert np.allclose(rgb_to_hed(hed_to_rgb(np.array([1.0, 0.0, 0.0]))), [1, 0, 0], atol=1e-4)


def test_tissue_statistics_by_hand(tmp_path):
    """Two 10x10 nuclei sharing an edge and one apart, on a 100x100 image of known stains."""
    cmap = np.zeros((100, 100))
    cmap[10:20, 10:20] = 300
    cmap[10:20, 20:30] = 7  # touches 300
    cmap[60:70, 60:70] = 42
    nucleus_hed, background_hed = np.array([1.2, 0.2, 0.3]), np.array([0.1, 0.4, 0.2])
    image = np.where((cmap > 0)[..., None], hed_to_rgb(nucleus_hed), hed_to_rgb(background_hed))
    write_sample(tmp_path, 'a', {1: cmap}, image=np.clip(image + 0.5, 0, 255).astype(np.uint8))
    stats = tissue_statistics(load_train_annotations(tmp_path, cache_file=None, progress=False), MPP)
    area_mm2 = 100 * 100 * MPP ** 2 * 1e-6
    assert stats['nuclei_per_mm2'] == pytest.approx(3 / area_mm2)
    assert stats['area_um2_median'] == pytest.approx(100 * MPP ** 2)
    assert stats['nuclear_fraction'] == pytest.approx(300 / 10_000)
    assert stats['touching'] == pytest.approx(2 / 3)
    assert stats['nn_um'] == pytest.approx(10 * MPP)  # the two touching centres are 10 px apart
    for k, stain in enumerate('hed'):
        assert stats[f'nucleus_{stain}'] == pytest.approx(nucleus_hed[k], abs=0.02)
        assert stats[f'background_{stain}'] == pytest.approx(background_hed[k], abs=0.02)
    assert stats['chromatin'] == pytest.approx(0, abs=0.01)  # flat nuclei have no texture
    assert stats['edge_contrast'] > 50  # dark nuclei on a pale background
    table = format_tissue_comparison({'a': stats, 'b': stats})
    assert '| annotated nuclei per mm^2 | 4800 | 4800 |' in table


def test_synthetic_matches_real_40x(calibrated):
    """Ranges measured on MoNuSeg 2018 (13 tiles, 0.25 um/px): ~6,000 nuclei/mm^2, median area 28 um^2, 20 % of
    the tissue in nuclei, 27 % touching, nucleus H density ~1.0 on a ~0.2 background, chromatin std ~0.3.
    The generator before calibration drew 8 um^2 nuclei covering 5 % of the image."""
    _, _, stats = calibrated
    assert 3_500 < stats['nuclei_per_mm2'] < 10_000
    assert 12 < stats['area_um2_median'] < 40
    assert 30 < stats['area_um2_p90'] < 90
    assert 0.10 < stats['nuclear_fraction'] < 0.35
    assert 0.10 < stats['touching'] < 0.6
    assert 0.6 < stats['nucleus_h'] < 1.6 and stats['background_h'] < 0.4
    assert 0.15 < stats['chromatin'] < 0.6


def test_synthetic_keeps_the_contest_layout(calibrated):
    root, samples, _ = calibrated
    counts = np.bincount([i['class_id'] for s in samples for i in s['instances']], minlength=5)[1:]
    assert counts[1] > counts[0] > counts[2] + counts[3] > 0  # lymphocytes, then epithelial; 3 and 4 rare
    assert max(i['instance_id'] for s in samples for i in s['instances']) > 255
    # cells cut by the border are drawn but not annotated: only whole nuclei that just touch the edge remain
    touching_border = sum(x1 <= 0 or y1 <= 0 or x2 >= s['width'] or y2 >= s['height']
                          for s in samples for x1, y1, x2, y2 in (i['bbox'] for i in s['instances']))
    assert touching_border <= 0.02 * counts.sum()
    assert not (root / 'test_release').exists()


@pytest.mark.slow
def test_compare_real_synthetic_tool(calibrated, tmp_path):
    root, _, _ = calibrated
    other = make_synthetic_hw3(tmp_path / 'other', num_train=2, num_test=0, seed=5, min_size=128, max_size=160)
    out = run_tool(sys.executable, 'tools/analysis_tools/compare_real_synthetic.py', str(root), str(other),
                   '--mpp', '0.25').stdout
    assert '| nuclear area fraction |' in out and '(0.25 um/px)' in out
    assert out.count('\n|') >= 20
