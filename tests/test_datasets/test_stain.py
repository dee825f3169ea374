"""QuPath's colour deconvolution (``mmcell.datasets.stain``) against values computed by hand: the residual vector
of QuPath's H&E default, optical densities with the default and a stated white, and the stain amounts of a nucleus
colour measured on a real MoNuSAC slide."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mmcell.datasets.stain import QUPATH_H_E, deconvolve_stains, optical_density, stain_vectors


def test_qupath_h_e_default_vectors_and_residual():
    h, e, r = QUPATH_H_E.matrix
    assert QUPATH_H_E.names == ('Hematoxylin', 'Eosin', 'Residual') and QUPATH_H_E.white == (255.0, 255.0, 255.0)
    assert h == pytest.approx([0.65111, 0.70119, 0.29049], abs=2e-5)  # already unit length
    assert e == pytest.approx([0.2159, 0.8012, 0.5581], abs=2e-5)
    # H x E = (0.70119*0.5581 - 0.29049*0.8012, 0.29049*0.2159 - 0.65111*0.5581, 0.65111*0.8012 - 0.70119*0.2159)
    #       = (0.158593, -0.300667, 0.370281), length 0.502654
    assert r == pytest.approx([0.158593 / 0.502654, -0.300667 / 0.502654, 0.370281 / 0.502654], abs=1e-5)
    assert r == pytest.approx([0.31551, -0.59816, 0.73665], abs=1e-5)


def test_optical_density_is_qupaths_make_od():
    # -log10(max(v, 1) / max), never below 0
    assert optical_density(np.array([255, 25.5, 0])) == pytest.approx([0.0, 1.0, math.log10(255)])
    assert optical_density(np.array([1, 2, 1])) == pytest.approx([math.log10(255), math.log10(127.5), math.log10(255)])
    # a stated white: 240 is background (0), brighter values clip at 0, 24 is one decade
    assert optical_density(np.array([240, 250, 24]), white=240) == pytest.approx([0.0, 0.0, 1.0])
    assert optical_density(np.array([200, 200, 200]), white=(200, 250, 100)) == pytest.approx(
        [0.0, math.log10(250 / 200), 0.0])


def test_nucleus_colour_gives_qupaths_numbers():
    """Mean RGB (84, 13, 105) of a nucleus on a real MoNuSAC SVS: OD = -log10(rgb / 255) = (0.48226, 1.29260,
    0.38535); solving OD = h * H + e * E + r * R by hand (Cramer's rule) gives h 0.6376, e 0.8036, r -0.3371 -- the
    "about 0.64 / 0.81" of issue 25 (mmcell's old natural-log skimage HED gave 1.36 / 2.14)."""
    h, e, r = deconvolve_stains(np.array([84, 13, 105], np.uint8))
    assert (h, e, r) == pytest.approx((0.6376, 0.8036, -0.3371), abs=5e-4)
    od = optical_density(np.array([84, 13, 105]))
    assert od == pytest.approx([0.48226, 1.29260, 0.38535], abs=1e-5)
    np.testing.assert_allclose(np.array([h, e, r]) @ QUPATH_H_E.matrix, od, atol=1e-9)  # mixes back


def test_pure_stains_and_own_vectors():
    # a pixel of pure hematoxylin at OD 0.5: channel c = 255 * 10^(-0.5 * H_c)
    pure = 255.0 * 10 ** (-0.5 * QUPATH_H_E.matrix[0])
    assert deconvolve_stains(pure) == pytest.approx([0.5, 0.0, 0.0], abs=1e-9)
    assert deconvolve_stains(np.full((2, 2, 3), 255, np.uint8)) == pytest.approx(np.zeros((2, 2, 3)))
    # an image's own vectors (lengths do not matter) and white
    own = stain_vectors((1.3, 1.4, 0.58), (0.1, 0.9, 0.4), white=(240, 235, 245))
    assert own.matrix[0] == pytest.approx(np.array([1.3, 1.4, 0.58]) / np.linalg.norm([1.3, 1.4, 0.58]))
    mixed = np.array([0.7, 0.2, 0.0]) @ own.matrix
    rgb = np.asarray(own.white) * 10 ** -mixed
    assert deconvolve_stains(rgb, own) == pytest.approx([0.7, 0.2, 0.0], abs=1e-9)
    with pytest.raises(ValueError, match='linearly dependent'):
        stain_vectors((1, 1, 0), (2, 2, 0), (0, 1, 1))
    with pytest.raises(ValueError, match='length > 0'):
        stain_vectors((0, 0, 0), (1, 0, 0))
