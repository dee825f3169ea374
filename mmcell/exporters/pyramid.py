"""``labels.ome.tif``: a pyramidal, tiled OME-TIFF whose series 0 holds the uint32 instance ids (= the cell table ids)
and series 1 the class map (uint8, class id 1..K), painted tile by tile from chunks of cells
(:class:`mmcell.structures.cells.CellChunk`), so memory does not grow with the slide."""
from __future__ import annotations

import math
from typing import Iterator, List, Optional, Sequence

import numpy as np
import tifffile

from mmcell.structures.cells import CellChunk

LABEL_TILE = 512  # tile side of labels.ome.tif (every level)


def _label_tiles(chunks: Sequence[CellChunk], step: int, width: int, height: int, tile: int, field_name: str,
                 dtype: np.dtype) -> Iterator[np.ndarray]:
    """Tiles (row-major) of level ``step`` (= ``labels[::step, ::step]`` of level 0) painted from the chunks."""
    cache: dict = {}
    for ty in range(0, height, tile):
        band0, band1 = ty * step, (ty + tile) * step  # level-0 rows of this tile row
        for key in [k for k, c in cache.items() if chunks[k].ymax <= band0]:
            del cache[key]
        for k, chunk in enumerate(chunks):
            if k not in cache and chunk.ymin < band1 and chunk.ymax > band0:
                cache[k] = chunk.load()
        parts = [cache[k] for k in sorted(cache)]
        boxes = np.concatenate([p['boxes'] for p in parts]) if parts else np.zeros((0, 4), np.int64)
        in_band = np.flatnonzero((boxes[:, 1] < band1) & (boxes[:, 3] > band0)) if len(boxes) else []
        refs = [(p, i) for p in parts for i in range(len(p['boxes']))]
        for tx in range(0, width, tile):
            out = np.zeros((tile, tile), dtype)
            x0, x1 = tx * step, (tx + tile) * step
            for j in in_band:
                bx1, by1, bx2, by2 = (int(v) for v in boxes[j])
                if bx2 <= x0 or bx1 >= x1:
                    continue
                part, i = refs[j]
                value = part['ids'][i] if field_name == 'ids' else part['labels'][i] + 1
                h, w = by2 - by1, bx2 - bx1
                mask = np.unpackbits(part['packed'][part['offsets'][i]:part['offsets'][i + 1]],
                                     count=h * w).reshape(h, w)
                r0, c0 = (-by1) % step, (-bx1) % step
                sub = mask[r0::step, c0::step]
                if not sub.size:
                    continue
                oy, ox = (by1 + r0) // step - ty, (bx1 + c0) // step - tx
                sy0, sx0 = max(0, -oy), max(0, -ox)
                sy1, sx1 = min(sub.shape[0], tile - oy), min(sub.shape[1], tile - ox)
                if sy1 <= sy0 or sx1 <= sx0:
                    continue
                region = out[oy + sy0:oy + sy1, ox + sx0:ox + sx1]
                region[sub[sy0:sy1, sx0:sx1] > 0] = value
            yield out


def label_levels(width: int, height: int, tile: int = LABEL_TILE) -> List[int]:
    """Downsample steps of the label pyramid: 1, 2, 4, ... until a level fits in one tile."""
    steps = [1]
    while max(math.ceil(width / steps[-1]), math.ceil(height / steps[-1])) > tile:
        steps.append(steps[-1] * 2)
    return steps


def write_label_pyramid(path: str, width: int, height: int, chunks: Sequence[CellChunk],
                        mpp: Optional[float] = None, tile: int = LABEL_TILE) -> None:
    """Write the label OME-TIFF (see the module docstring) of a ``width`` x ``height`` level-0 slide, tile by tile.

    Memory: the cells of the chunks that meet one row of tiles at a time.
    """

    steps = label_levels(width, height, tile)
    pixels = dict(PhysicalSizeX=mpp, PhysicalSizeXUnit='µm', PhysicalSizeY=mpp, PhysicalSizeYUnit='µm') if mpp \
        else {}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        for name, field_name, dtype in (('labels', 'ids', np.uint32), ('classes', 'labels', np.uint8)):
            for li, step in enumerate(steps):
                w, h = math.ceil(width / step), math.ceil(height / step)
                kwargs: dict = dict(shape=(h, w), dtype=dtype, tile=(tile, tile), compression='zlib',
                                    photometric='minisblack')
                if li == 0:
                    kwargs.update(subifds=len(steps) - 1, metadata=dict(axes='YX', Name=name, **pixels))
                else:
                    kwargs.update(subfiletype=1)
                tif.write(_label_tiles(chunks, step, w, h, tile, field_name, dtype), **kwargs)
