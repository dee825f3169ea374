"""``preview.png``: the nuclei of a slide, coloured by class, drawn on its thumbnail."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import cv2
import numpy as np


class PreviewCanvas:
    """A thumbnail of the slide on which nuclei are drawn as dots coloured by class (``preview.png``).

    Args:
        thumbnail: RGB thumbnail; ``downsample`` level-0 px per thumbnail px.
        colors: RGB colour per class index.
        tissue: optional tissue mask (same size as the thumbnail), outlined in dark grey.
        region: optional level-0 ``(x, y, w, h)`` worked on, outlined in black.
    """

    def __init__(self, thumbnail: np.ndarray, downsample: float, colors: Sequence[Sequence[int]],
                 tissue: Optional[np.ndarray] = None, region: Optional[Sequence[int]] = None) -> None:

        self.image = np.ascontiguousarray(thumbnail[..., ::-1]).copy()  # BGR for OpenCV
        self.ds, self.colors = float(downsample), [tuple(int(v) for v in c[::-1]) for c in colors]
        if tissue is not None and tissue.any():
            contours, _ = cv2.findContours(tissue.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(self.image, contours, -1, (90, 90, 90), 1)
        if region is not None:
            x, y, w, h = (v / self.ds for v in region)
            cv2.rectangle(self.image, (int(x), int(y)), (int(math.ceil(x + w)) - 1, int(math.ceil(y + h)) - 1),
                          (0, 0, 0), 1)

    def add(self, row: dict, label: int) -> None:

        radius = max(1, int(round(math.sqrt(row['area_px'] / math.pi) / self.ds)))
        centre = (int(row['centroid_x'] / self.ds), int(row['centroid_y'] / self.ds))
        cv2.circle(self.image, centre, radius, self.colors[label % len(self.colors)], -1)

    def png(self) -> bytes:

        ok, buf = cv2.imencode('.png', self.image)
        if not ok:
            raise ValueError('preview: PNG encoding failed')
        return buf.tobytes()
