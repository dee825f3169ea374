"""The tile layout of a slide: tiles of ``tile`` px at the model's mpp, overlapping by ``overlap``, laid out in level-0
pixels with :func:`mmcell.structures.tiling.tile_starts` / :func:`tile_cores` (the rule
:class:`mmcell.models.TiledDetector` uses); tiles without tissue are skipped. :func:`read_tile` reads one tile at the
pyramid level nearest the model's mpp and resamples it exactly to that mpp."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmcell.datasets.slide.reader import SlideError, SlideReader
from mmcell.datasets.slide.tissue import TissueMask
from mmcell.structures.tiling import tile_cores, tile_starts


# ---------------------------------------------------------------------------------------------- tiling
@dataclass
class SlideTiling:
    """Tile layout of a slide (or a region of it) in level-0 pixels.

    Attributes:
        region: ``(x, y, w, h)`` level-0 rectangle tiled.
        tile0, overlap0: tile side and overlap in level-0 px (``tile`` / ``overlap`` at the model's mpp).
        xs, ys: tile starts (level-0 px, absolute); ``xcores`` / ``ycores`` the core interval of each.
        tiles: ``(row, col)`` of every tile that holds tissue, row-major; its index in this list is the tile id.
        scale: model px per level-0 px (slide mpp / model mpp).
        level: pyramid level read (the coarsest at least as fine as the model's mpp).
    """
    region: Tuple[int, int, int, int]
    tile0: int
    overlap0: int
    xs: List[int]
    ys: List[int]
    xcores: List[Tuple[float, float]]
    ycores: List[Tuple[float, float]]
    tiles: List[Tuple[int, int]] = field(default_factory=list)
    scale: float = 1.0
    level: int = 0

    def rect(self, tile_id: int) -> Tuple[int, int, int, int]:
        """Level-0 ``(x, y, w, h)`` of a tile."""
        r, c = self.tiles[tile_id]
        x, y = self.xs[c], self.ys[r]
        rx, ry, rw, rh = self.region
        return x, y, min(self.tile0, rx + rw - x), min(self.tile0, ry + rh - y)

    def core(self, tile_id: int) -> Tuple[Tuple[float, float], Tuple[float, float]]:
        r, c = self.tiles[tile_id]
        return self.xcores[c], self.ycores[r]

    def to_json(self) -> dict:
        return dict(region=list(self.region), tile0=self.tile0, overlap0=self.overlap0, xs=self.xs, ys=self.ys,
                    tiles=[list(t) for t in self.tiles], scale=self.scale, level=self.level)

    @classmethod
    def from_json(cls, d: dict) -> SlideTiling:
        rx, ry, rw, rh = d['region']
        xs, ys = list(d['xs']), list(d['ys'])
        xcores = [(lo + rx, hi + rx) for lo, hi in tile_cores([x - rx for x in xs], d['tile0'], rw)]
        ycores = [(lo + ry, hi + ry) for lo, hi in tile_cores([y - ry for y in ys], d['tile0'], rh)]
        return cls(tuple(d['region']), d['tile0'], d['overlap0'], xs, ys, xcores, ycores,
                   [tuple(t) for t in d['tiles']], d['scale'], d['level'])


def plan_tiles(reader: SlideReader, model_mpp: float, tile: int, overlap: int,
               tissue: Optional[TissueMask] = None,
               region: Optional[Sequence[int]] = None) -> SlideTiling:
    """Lay out tiles of ``tile`` model px (overlap ``overlap``) over ``region`` and keep those with tissue."""

    if reader.mpp is None:
        raise SlideError(f'{reader.path}: no microns per pixel in its metadata; pass --mpp (e.g. --mpp 0.25)')
    w0, h0 = reader.dimensions
    if region is None:
        region = (0, 0, w0, h0)
    rx, ry, rw, rh = (int(v) for v in region)
    if rw <= 0 or rh <= 0 or rx < 0 or ry < 0 or rx + rw > w0 or ry + rh > h0:
        raise SlideError(f'{reader.path}: --region {rx} {ry} {rw} {rh} is not inside the slide ({w0} x {h0} px)')
    if not 0 <= overlap < tile:
        raise SlideError(f'{reader.path}: need 0 <= --overlap < --tile, got {overlap} and {tile}')
    scale = reader.mpp / model_mpp
    tile0 = max(16, int(round(tile / scale)))
    overlap0 = min(tile0 - 1, int(round(overlap / scale)))
    xs = [x + rx for x in tile_starts(rw, tile0, overlap0)]
    ys = [y + ry for y in tile_starts(rh, tile0, overlap0)]
    xcores = [(lo + rx, hi + rx) for lo, hi in tile_cores([x - rx for x in xs], tile0, rw)]
    ycores = [(lo + ry, hi + ry) for lo, hi in tile_cores([y - ry for y in ys], tile0, rh)]
    tiles = []
    for r, y in enumerate(ys):
        for c, x in enumerate(xs):
            if tissue is None or tissue.any_in(x, y, min(x + tile0, rx + rw), min(y + tile0, ry + rh)):
                tiles.append((r, c))
    return SlideTiling((rx, ry, rw, rh), tile0, overlap0, xs, ys, xcores, ycores, tiles, scale,
                       reader.best_level_for(model_mpp))


def read_tile(reader: SlideReader, tiling: SlideTiling, tile_id: int) -> np.ndarray:
    """RGB tile at the model's mpp: read at ``tiling.level`` and resampled exactly (pixel centres aligned)."""
    x, y, w, h = tiling.rect(tile_id)
    mw, mh = max(1, int(round(w * tiling.scale))), max(1, int(round(h * tiling.scale)))
    level = tiling.level
    ds = reader.level_downsamples[level]
    if level == 0 and mw == w and mh == h:
        return reader.read(0, x, y, w, h)
    # level px per model px, per axis (exact for this tile: w level-0 px -> mw model px)
    sx, sy = w / mw / ds, h / mh / ds
    lx0, ly0 = x / ds, y / ds
    ix0, iy0 = int(math.floor(lx0)) - 2, int(math.floor(ly0)) - 2
    iw, ih = int(math.ceil(w / ds)) + 5, int(math.ceil(h / ds)) + 5
    src = reader.read(level, ix0, iy0, iw, ih)
    if sx > 1.0 or sy > 1.0:  # downsampling: low-pass first so that bilinear sampling does not alias
        src = cv2.GaussianBlur(src, (0, 0), sigmaX=max(0.3, (sx - 1) / 2), sigmaY=max(0.3, (sy - 1) / 2))
    # model px (u, v) centre -> level coordinate (u + 0.5) * s + origin - 0.5, relative to the read window
    matrix = np.array([[sx, 0, (lx0 - ix0) + 0.5 * sx - 0.5], [0, sy, (ly0 - iy0) + 0.5 * sy - 0.5]], np.float64)
    return cv2.warpAffine(src, matrix, (mw, mh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
