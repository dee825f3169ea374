"""Cell records: one nucleus of a whole slide (:class:`Cell`), cells packed into arrays for a worker or a file
(:class:`CellChunk`, :func:`pack_cells`), and the outline of a cell mask as polygon rings (:func:`cell_polygon`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import cv2
import numpy as np


@dataclass
class Cell:
    """One nucleus of a slide: its final (visible, non-overlapping) mask as a crop at ``(x1, y1)`` level-0 px.

    ``means`` holds the mean R, G, B and hematoxylin / eosin optical densities of the nucleus pixels.
    """
    id: int
    label: int
    score: float
    x1: int
    y1: int
    mask: np.ndarray
    means: Tuple[float, ...] = (float('nan'),) * 5


def cell_polygon(mask: np.ndarray, x1: int, y1: int) -> List[List[List[float]]]:
    """GeoJSON Polygon rings (outer first, then holes; each closed) of a crop, through pixel centres, level-0 px."""

    contours, hierarchy = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    if contours:
        outer = max((i for i in range(len(contours)) if hierarchy[0][i][3] < 0), key=lambda i: len(contours[i]))
        order = [outer] + [i for i in range(len(contours)) if hierarchy[0][i][3] == outer and len(contours[i]) >= 3]
        for i in order:
            pts = contours[i][:, 0, :].astype(np.float64) + (x1 + 0.5, y1 + 0.5)
            rings.append(pts)
    if not rings or len(rings[0]) < 3:  # a line or a dot: its pixel box
        ys, xs = np.nonzero(mask)
        bx0, by0, bx1, by1 = xs.min() + x1, ys.min() + y1, xs.max() + x1 + 1, ys.max() + y1 + 1
        rings = [np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]], np.float64)] + rings[1:]
    return [[[round(float(x), 2), round(float(y), 2)] for x, y in np.vstack([r, r[:1]])] for r in rings]


@dataclass
class CellChunk:
    """Cells whose masks lie within level-0 rows ``[ymin, ymax)``; ``load()`` returns ``dict(ids, labels, boxes,
    packed, offsets)``: uint32 ids, class indices 0..K-1, ``(n, 4)`` int crop boxes ``x1, y1, x2, y2`` (exclusive),
    ``np.packbits`` of the crops (row-major) and the start of each crop in ``packed`` (``n + 1`` entries)."""
    ymin: int
    ymax: int
    load: Callable[[], dict]


def pack_cells(cells: Sequence[Cell]) -> dict:
    """:class:`Cell` objects as the arrays of :class:`CellChunk`."""
    packed = [np.packbits(c.mask.astype(bool).ravel()) for c in cells]
    offsets = np.zeros(len(cells) + 1, np.int64)
    offsets[1:] = np.cumsum([len(p) for p in packed]) if packed else []
    return dict(ids=np.array([c.id for c in cells], np.uint32), labels=np.array([c.label for c in cells], np.int16),
                boxes=np.array([[c.x1, c.y1, c.x1 + c.mask.shape[1], c.y1 + c.mask.shape[0]] for c in cells],
                               np.int64).reshape(-1, 4),
                packed=np.concatenate(packed) if packed else np.zeros(0, np.uint8), offsets=offsets)
