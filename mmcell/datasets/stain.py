"""Colour deconvolution (Ruifrok & Johnston): mmcell's one stain module, with two stain spaces.

- **Measurements** (the ``Nucleus: Hematoxylin OD mean`` ... of the cell tables and GeoJSON): QuPath's definitions,
  so a QuPath user's rule ("Hematoxylin OD mean > 0.3") means the same on mmcell's numbers. Optical density per
  channel ``OD = max(0, -log10(max(value, 1) / white))`` (QuPath's ``ColorDeconvolutionHelper.makeOD``; white = the
  background, 255 unless stated), stain vectors normalised to unit length, the third a *residual* = the normalised
  cross product of the first two when not given (QuPath's ``StainVector.makeResidualStainVector``), and the stain
  amounts ``OD @ inverse(stain matrix)`` (rows: stains). :data:`QUPATH_H_E` is QuPath's *H&E default*
  (hematoxylin 0.65111 0.70119 0.29049, eosin 0.2159 0.8012 0.5581, white 255 255 255); :func:`stain_vectors` builds
  an image's own (e.g. the values of QuPath's *Estimate stain vectors*). :func:`deconvolve_stains`.
- **Augmentation and synthesis** (the stain jitter, the synthetic generator, the real-vs-synthetic statistics):
  scikit-image's HED space (natural-log optical densities, Ruifrok & Johnston's H, E and DAB vectors), which the
  generator is calibrated in. :func:`rgb_to_hed` / :func:`hed_to_rgb`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np


# ------------------------------------------------------------------------------------------------ QuPath's definition
class StainVectors(NamedTuple):
    """A colour deconvolution set-up as QuPath stores it (``ColorDeconvolutionStains``).

    Attributes:
        names: the three stain names (the third ``Residual`` when computed).
        matrix: ``(3, 3)`` unit stain vectors in optical density, one stain per row (R, G, B).
        white: the background (white) value of each channel, the ``max`` of the optical density.
    """
    names: Tuple[str, str, str]
    matrix: np.ndarray
    white: Tuple[float, float, float]


def _unit(vector: Sequence[float], name: str) -> np.ndarray:
    v = np.asarray(vector, np.float64).reshape(3)
    length = float(np.linalg.norm(v))
    if not np.isfinite(length) or length <= 0:
        raise ValueError(f'stain vector {name} {list(v)}: needs a finite length > 0')
    return v / length


def stain_vectors(stain1: Sequence[float], stain2: Sequence[float], stain3: Optional[Sequence[float]] = None,
                  white: Union[float, Sequence[float]] = 255.0,
                  names: Sequence[str] = ('Hematoxylin', 'Eosin')) -> StainVectors:
    """Stain vectors as QuPath builds them: each normalised to unit length; without ``stain3`` the residual, the
    normalised cross product ``stain1 x stain2``.

    Args:
        stain1, stain2, stain3: optical-density vectors (R, G, B), any length.
        white: background value(s) of R, G, B (one number: all three).
        names: names of stain 1 and 2 (and 3).

    Raises:
        ValueError: a zero, non-finite or parallel vector, or a white value that is not > 0.
    """
    first, second = _unit(stain1, names[0]), _unit(stain2, names[1])
    third = _unit(np.cross(first, second) if stain3 is None else stain3, names[2] if len(names) > 2 else 'Residual')
    matrix = np.stack([first, second, third])
    if abs(np.linalg.det(matrix)) < 1e-6:
        raise ValueError('stain vectors are linearly dependent (the deconvolution has no inverse)')
    whites = np.broadcast_to(np.asarray(white, np.float64), (3,))
    if not (np.isfinite(whites).all() and (whites > 0).all()):
        raise ValueError(f'white {list(whites)}: the background values must be > 0')
    stain_names = (names[0], names[1], names[2] if len(names) > 2 else 'Residual')
    return StainVectors(stain_names, matrix, tuple(float(w) for w in whites))


#: QuPath's "H&E default" (``ColorDeconvolutionStains.makeDefaultColorDeconvolutionStains(H_E)``)
QUPATH_H_E = stain_vectors((0.65111, 0.70119, 0.29049), (0.2159, 0.8012, 0.5581), white=255.0)


def optical_density(rgb: np.ndarray, white: Union[float, Sequence[float]] = 255.0) -> np.ndarray:
    """QuPath's optical density of RGB values ``(..., 3)``: ``max(0, -log10(max(value, 1) / white))`` (float64)."""
    values = np.maximum(np.asarray(rgb, np.float64), 1.0)
    return np.maximum(0.0, -np.log10(values / np.asarray(white, np.float64)))


def deconvolve_stains(rgb: np.ndarray, stains: StainVectors = QUPATH_H_E) -> np.ndarray:
    """The stain amounts ``(..., 3)`` (float64) of RGB values ``(..., 3)``: QuPath's per-pixel colour deconvolution
    (stain 1, stain 2, stain 3 / residual; with :data:`QUPATH_H_E`: hematoxylin, eosin, residual)."""
    return optical_density(rgb, stains.white) @ np.linalg.inv(stains.matrix)


# ------------------------------------------------------------------------------------- the generator's HED space
# Ruifrok & Johnston stain vectors (rows: haematoxylin, eosin, DAB) in optical density, as scikit-image uses.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])


HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """Unmix uint8 RGB ``(..., 3)`` into haematoxylin, eosin and DAB optical densities ``(..., 3)`` float32 in the
    generator's space (natural log, scikit-image's vectors; not QuPath's: see :func:`deconvolve_stains`).

    The stain jitter, the synthetic generator and the real-vs-synthetic statistics all go through it, so a density
    measured on a real image means the same in the generator.
    """
    od = -np.log(np.maximum(np.asarray(rgb, np.float32) / 255.0, 1e-6))
    return od @ HED_FROM_RGB.astype(np.float32)


def hed_to_rgb(hed: np.ndarray) -> np.ndarray:
    """Mix HED optical densities ``(..., 3)`` back into float32 RGB in [0, 255] (Beer-Lambert, not rounded)."""
    return 255.0 * np.exp(-(np.asarray(hed, np.float32) @ RGB_FROM_HED.astype(np.float32)))
