"""``preview.png``: the nuclei of a slide, coloured by class, drawn on its thumbnail, with a legend of the class
names, their colours and counts below it."""
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
        names: class name per class index (the legend; none without names).
        tissue: optional tissue mask (same size as the thumbnail), outlined in dark grey.
        region: optional level-0 ``(x, y, w, h)`` worked on, outlined in black.
    """

    def __init__(self, thumbnail: np.ndarray, downsample: float, colors: Sequence[Sequence[int]],
                 tissue: Optional[np.ndarray] = None, region: Optional[Sequence[int]] = None,
                 names: Sequence[str] = ()) -> None:

        self.image = np.ascontiguousarray(thumbnail[..., ::-1]).copy()  # BGR for OpenCV
        self.ds, self.colors = float(downsample), [tuple(int(v) for v in c[::-1]) for c in colors]
        self.names, self.counts = list(names), [0] * len(self.colors)
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
        self.counts[label % len(self.colors)] += 1

    def legend(self) -> np.ndarray:
        """A white band (BGR) as wide as the thumbnail: per class a dot of its colour, its name and its count."""
        width = max(self.image.shape[1], 160)
        font, scale, line = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 16
        entries = [f'{name} ({count:,})' for name, count in zip(self.names, self.counts)]
        sizes = [cv2.getTextSize(text, font, scale, 1)[0][0] + 22 for text in entries]
        rows, x = [[]], 0
        for i, size in enumerate(sizes):  # wrap the entries into rows that fit the width
            if rows[-1] and x + size > width:
                rows.append([])
                x = 0
            rows[-1].append(i)
            x += size
        band = np.full((line * len(rows) + 6, width, 3), 255, np.uint8)
        for r, row in enumerate(rows):
            x, y = 4, 4 + line * r + line // 2
            for i in row:
                cv2.circle(band, (x + 5, y), 5, self.colors[i], -1)
                cv2.putText(band, entries[i], (x + 14, y + 4), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
                x += sizes[i]
        return band

    def png(self) -> bytes:

        image = self.image
        if self.names:
            band = self.legend()
            if band.shape[1] > image.shape[1]:
                image = np.pad(image, ((0, 0), (0, band.shape[1] - image.shape[1]), (0, 0)), constant_values=255)
            image = np.concatenate([image, band], axis=0)
        ok, buf = cv2.imencode('.png', image)
        if not ok:
            raise ValueError('preview: PNG encoding failed')
        return buf.tobytes()
