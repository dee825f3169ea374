"""The tile layout and the seam rule shared by tiled inference (:class:`mmcell.models.TiledDetector`) and whole
slides (:mod:`mmcell.datasets.slide`): overlapping tiles, each owning a *core*; a detection belongs to the one tile
whose core holds its box centre."""
from __future__ import annotations

from typing import List, Tuple


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile`` px overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    stride = max(tile - overlap, 1)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def tile_cores(starts: List[int], tile: int, length: int) -> List[Tuple[float, float]]:
    """Core interval of each tile: the midpoints of its overlaps with the neighbours (edges reach the image)."""
    cores = []
    for i, s in enumerate(starts):
        lo = 0.0 if i == 0 else (s + starts[i - 1] + tile) / 2
        hi = float(length) if i == len(starts) - 1 else (starts[i + 1] + s + tile) / 2
        cores.append((lo, hi))
    return cores


def in_core(boxes, core: Tuple[Tuple[float, float], Tuple[float, float]]):
    """Which boxes (``(n, 4)`` x1, y1, x2, y2; tensor or array) have their centre in ``core`` ((x0, x1), (y0, y1)).

    The seam rule of tiled inference: a detection belongs to the one tile whose core holds its box centre (cores
    partition the image, half-open intervals), so an object seen by two overlapping tiles is kept once.
    """
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    (cx0, cx1), (cy0, cy1) = core
    return (cx >= cx0) & (cx < cx1) & (cy >= cy0) & (cy < cy1)
