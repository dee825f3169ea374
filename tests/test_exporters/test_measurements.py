"""QuPath's nucleus measurements (``mmcell.exporters.measurements``) against hand-computed shapes: a disc, an
ellipse, a square (exact), and stain statistics of known pixels; the GeoJSON names a QuPath user sees."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mmcell.datasets.stain import QUPATH_H_E
from mmcell.exporters.cells import geojson_feature
from mmcell.exporters.measurements import (
    INTENSITY_FIELDS,
    NUCLEUS_MEASUREMENTS,
    intensity_statistics,
    measurement_dict,
    nucleus_measurements,
)

MPP = 0.25
YY, XX = np.mgrid[-40:41, -40:41]


def test_square_is_exact():
    m = nucleus_measurements(np.ones((20, 20), bool), MPP)
    assert m['area_px'] == 400 and m['area_um2'] == pytest.approx(25.0)
    assert m['perimeter_px'] == pytest.approx(80.0) and m['perimeter_um'] == pytest.approx(20.0)
    assert m['circularity'] == pytest.approx(math.pi / 4)  # 4 pi 400 / 80^2
    assert m['solidity'] == pytest.approx(1.0)
    assert m['max_caliper_px'] == pytest.approx(20 * math.sqrt(2)) and m['min_caliper_px'] == pytest.approx(20.0)
    assert m['max_caliper_um'] == pytest.approx(5 * math.sqrt(2)) and m['eccentricity'] == pytest.approx(0.0)


@pytest.mark.parametrize('radius', [10, 20, 30])
def test_disc(radius):
    mask = XX ** 2 + YY ** 2 <= radius ** 2
    m = nucleus_measurements(mask, MPP)
    r_eq = math.sqrt(mask.sum() / math.pi)  # the radius of a disc of that many pixels
    assert abs(m['area_px'] / (math.pi * radius ** 2) - 1) < 0.01
    assert m['perimeter_px'] == pytest.approx(2 * math.pi * r_eq, rel=0.035)
    assert m['circularity'] == pytest.approx(1.0, abs=0.06)
    assert m['solidity'] == pytest.approx(1.0, abs=0.03)
    assert m['max_caliper_px'] == pytest.approx(2 * r_eq, abs=1.5)
    assert m['min_caliper_px'] == pytest.approx(2 * r_eq, abs=1.5)
    assert m['eccentricity'] == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize('angle', [0, 37])
def test_ellipse(angle):
    a, b = 30, 15
    t = math.radians(angle)
    u, v = XX * math.cos(t) + YY * math.sin(t), -XX * math.sin(t) + YY * math.cos(t)
    m = nucleus_measurements((u / a) ** 2 + (v / b) ** 2 <= 1, MPP)
    perimeter = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))  # Ramanujan: 145.3
    assert m['area_px'] == pytest.approx(math.pi * a * b, rel=0.01)
    assert m['perimeter_px'] == pytest.approx(perimeter, rel=0.035)
    assert m['circularity'] == pytest.approx(4 * math.pi * math.pi * a * b / perimeter ** 2, abs=0.05)  # 0.841
    assert m['max_caliper_px'] == pytest.approx(2 * a, abs=1.5) and m['min_caliper_px'] == pytest.approx(2 * b, abs=1.5)
    assert m['eccentricity'] == pytest.approx(math.sqrt(1 - (b / a) ** 2), abs=0.01)  # 0.866
    assert 0.95 <= m['solidity'] <= 1.0


def test_stain_statistics_of_known_pixels():
    """QuPath's definition: per pixel OD = -log10(rgb / 255), unmixed by QuPath's H&E default (with its residual),
    then mean / std dev / max over the pixels."""
    a, b = np.array([120, 60, 160], np.uint8), np.array([200, 150, 210], np.uint8)
    pixels = np.stack([a] * 30 + [b] * 10)
    od = lambda rgb: (-np.log10(rgb / 255.0)) @ np.linalg.inv(QUPATH_H_E.matrix)  # noqa: E731 -- by hand
    ha, hb = od(a.astype(np.float64))[0], od(b.astype(np.float64))[0]
    stats = dict(zip(INTENSITY_FIELDS, intensity_statistics(pixels)))
    assert stats['mean_hematoxylin'] == pytest.approx(0.75 * ha + 0.25 * hb, rel=1e-5)
    assert stats['std_hematoxylin'] == pytest.approx(math.sqrt(0.75 * 0.25) * abs(ha - hb), rel=1e-5)
    assert stats['max_hematoxylin'] == pytest.approx(max(ha, hb), rel=1e-5)
    assert stats['mean_r'] == pytest.approx(140.0)
    assert np.isnan(intensity_statistics(None)).all()
    # a nucleus of mean RGB (84, 13, 105) on a real MoNuSAC slide: QuPath's H 0.64 / E 0.80 (test_stain.py)
    stats = dict(zip(INTENSITY_FIELDS, intensity_statistics(np.tile([84, 13, 105], (50, 1)).astype(np.uint8))))
    assert stats['mean_hematoxylin'] == pytest.approx(0.6376, abs=5e-4)
    assert stats['mean_eosin'] == pytest.approx(0.8036, abs=5e-4)
    assert stats['std_hematoxylin'] == pytest.approx(0.0, abs=1e-12)


def test_qupath_names():
    row = dict(id=3, score=0.9, class_id=1, **{'class': 'tumour'},
               **nucleus_measurements(np.ones((20, 20), bool), MPP, intensity_statistics(np.full((400, 3), 100))))
    names = set(geojson_feature(row, {'type': 'Polygon', 'coordinates': []}, (1, 2, 3), 'x')['properties']
                ['measurements'])
    assert names == {'Label', 'Score', 'Area px', 'Nucleus: Area µm^2', 'Nucleus: Perimeter µm',
                     'Nucleus: Circularity', 'Nucleus: Solidity', 'Nucleus: Max caliper µm', 'Nucleus: Min caliper µm',
                     'Nucleus: Eccentricity', 'Nucleus: Hematoxylin OD mean', 'Nucleus: Hematoxylin OD std dev',
                     'Nucleus: Hematoxylin OD max', 'Nucleus: Eosin OD mean', 'Nucleus: Red mean',
                     'Nucleus: Green mean', 'Nucleus: Blue mean'}
    assert len(NUCLEUS_MEASUREMENTS) == 11
    uncalibrated = measurement_dict(row, calibrated=False)
    assert uncalibrated['Nucleus: Perimeter px'] == pytest.approx(80.0) and 'Nucleus: Area µm^2' not in uncalibrated
