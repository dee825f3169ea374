"""The tissue of a slide: Otsu on the saturation of a thumbnail (at least :data:`MIN_TISSUE_SATURATION`, so an empty
slide has no tissue), closed, opened, holes filled, specks removed."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np
from scipy import ndimage

from mmcell.datasets.slide.reader import THUMBNAIL_SIDE, SlideReader

MIN_TISSUE_SATURATION = 20  # of 255: white glass with noise stays below, H&E tissue is well above


TISSUE_MIN_AREA_UM2 = 2000.0  # tissue specks smaller than this are dropped


TISSUE_CLOSE_UM = 20.0  # closing radius joining tissue fragments


# ---------------------------------------------------------------------------------------------- tissue
@dataclass
class TissueMask:
    """Tissue mask at thumbnail resolution: ``mask[ty, tx]`` covers level-0 px ``[tx * downsample, ...)``."""
    mask: np.ndarray
    downsample: float
    thumbnail: np.ndarray
    mpp: float

    @property
    def area_mm2(self) -> float:
        return float(self.mask.sum()) * (self.downsample * self.mpp / 1000.0) ** 2

    def any_in(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        """Whether any tissue lies in the level-0 rectangle ``[x0, x1) x [y0, y1)``."""
        d = self.downsample
        tx0, ty0 = int(math.floor(x0 / d)), int(math.floor(y0 / d))
        tx1, ty1 = int(math.ceil(x1 / d)), int(math.ceil(y1 / d))
        return bool(self.mask[max(ty0, 0):max(ty1, 0), max(tx0, 0):max(tx1, 0)].any())

    def restrict(self, region: Tuple[int, int, int, int]) -> TissueMask:
        """The mask with everything outside the level-0 ``region`` (x, y, w, h) cleared."""
        x, y, w, h = region
        d = self.downsample
        keep = np.zeros_like(self.mask)
        ty0, tx0 = int(math.floor(y / d)), int(math.floor(x / d))
        keep[ty0:int(math.ceil((y + h) / d)), tx0:int(math.ceil((x + w) / d))] = True
        return TissueMask(self.mask & keep, d, self.thumbnail, self.mpp)


def tissue_mask(reader: SlideReader, max_side: int = THUMBNAIL_SIDE) -> TissueMask:
    """Tissue of a slide: Otsu on the saturation of a thumbnail + clean-up (see the module docstring)."""

    thumb, ds = reader.thumbnail(max_side)
    sat = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)[..., 1]
    otsu, _ = cv2.threshold(sat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = sat > max(float(otsu), MIN_TISSUE_SATURATION)
    um_per_px = ds * float(reader.mpp)
    radius = max(1, int(round(TISSUE_CLOSE_UM / um_per_px)))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, disk)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    mask = ndimage.binary_fill_holes(mask > 0)
    labels, n = ndimage.label(mask)
    if n:
        sizes = np.bincount(labels.ravel())[1:] * um_per_px ** 2
        mask = np.isin(labels, np.flatnonzero(sizes >= TISSUE_MIN_AREA_UM2) + 1)
    return TissueMask(mask.astype(bool), ds, thumb, float(reader.mpp))
