"""HED colour deconvolution (Ruifrok & Johnston): the one stain space of mmcell. The stain jitter, the synthetic
generator, the real-vs-synthetic statistics and the slide cell table all go through it, so a density measured on a
real slide means the same in the generator.
"""
from __future__ import annotations

import numpy as np

# Ruifrok & Johnston stain vectors (rows: haematoxylin, eosin, DAB) in optical density, as scikit-image uses.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])


HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """Unmix uint8 RGB ``(..., 3)`` into haematoxylin, eosin and DAB optical densities ``(..., 3)`` float32.

    The one colour deconvolution of mmcell: the stain jitter, the synthetic generator and the real-vs-synthetic
    statistics all go through it, so a density measured on a real slide means the same in the generator.
    """
    od = -np.log(np.maximum(np.asarray(rgb, np.float32) / 255.0, 1e-6))
    return od @ HED_FROM_RGB.astype(np.float32)


def hed_to_rgb(hed: np.ndarray) -> np.ndarray:
    """Mix HED optical densities ``(..., 3)`` back into float32 RGB in [0, 255] (Beer-Lambert, not rounded)."""
    return 255.0 * np.exp(-(np.asarray(hed, np.float32) @ RGB_FROM_HED.astype(np.float32)))
