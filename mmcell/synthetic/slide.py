"""Synthetic whole-slide images: a pyramidal OME-TIFF (JPEG tiles) of H&E tissue on glass, with ground truth.

Built on the synthetic H&E generator (:func:`mmcell.synthetic.hw3.synthesize_image`): the slide is a mosaic of
independently drawn ``tile`` x ``tile`` fields (each with its own seeded random stream, so any tile can be drawn
alone), cut by a tissue outline (smooth noise thresholded to the requested tissue area) into tissue and white
glass. Nuclei cut at field borders are drawn cut and annotated as what is visible (as in a scan's tile grid).

Everything is streamed: level 0 is drawn and written one tile at a time; lower levels (downsample 4, 16, ... as in
SVS files) are built from disk-backed arrays in a temp folder beside the output. Ground truth goes to
``<stem>_gt.ome.tif`` (uint32 instance ids + class map, the format of ``labels.ome.tif`` of ``segment-slide``).
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np
import tifffile
from tqdm import tqdm

from mmcell.datasets.slide.reader import slide_stem
from mmcell.exporters.pyramid import write_label_pyramid
from mmcell.structures.cells import Cell, CellChunk, pack_cells
from mmcell.synthetic.hw3 import _smooth_noise, synthesize_image
from mmcell.utils.fileio import atomic_write

BACKGROUND_RGB = (236, 234, 238)  # bright-field glass


def _tissue_grid(rng: np.random.Generator, width: int, height: int, cell: int, fraction: float) -> np.ndarray:
    """Smooth tissue probability on a grid of ``cell`` px; exactly ``fraction`` of the grid is above 0.5."""

    gh, gw = max(2, math.ceil(height / cell)), max(2, math.ceil(width / cell))
    field = _smooth_noise(rng, (gh, gw), max(gh, gw) / 3.0)
    yy, xx = np.mgrid[0:gh, 0:gw]
    field += 1.5 * (1 - np.hypot((yy - gh / 2) / (gh / 2), (xx - gw / 2) / (gw / 2)))  # tissue in the middle
    if fraction >= 1:
        return np.ones((gh, gw), np.float32)
    if fraction <= 0:
        return np.zeros((gh, gw), np.float32)
    thr = np.quantile(field, 1 - fraction)
    return (0.5 + (field - thr) * 4).clip(0, 1).astype(np.float32)


def _tiles_of(array: np.ndarray, tile: int) -> Iterator[np.ndarray]:
    for y in range(0, array.shape[0], tile):
        for x in range(0, array.shape[1], tile):
            yield np.asarray(array[y:y + tile, x:x + tile])


def write_synthetic_slide(out_path: Union[str, Path], size: Union[int, Tuple[int, int]] = 20000, mpp: float = 0.25,
                          seed: int = 0, tissue_fraction: float = 0.35, tissue_mm2: Optional[float] = None,
                          tile: int = 512, jpeg_quality: int = 90, ground_truth: bool = True,
                          progress: bool = False) -> dict:
    """Write a synthetic slide (see the module docstring).

    Args:
        out_path: ``*.ome.tif`` file to write (atomically).
        size: level-0 side, or ``(width, height)``.
        mpp: microns per pixel written to the metadata (OME ``PhysicalSizeX`` and TIFF resolution tags).
        seed: random seed; the same seed gives the same slide.
        tissue_fraction: fraction of the slide covered by tissue (ignored when ``tissue_mm2`` is given).
        tissue_mm2: tissue area in mm^2 (keeps the work constant across slide sizes, for benchmarks).
        tile: TIFF tile side (and field size).
        jpeg_quality: JPEG quality of the tiles.
        ground_truth: also write ``<stem>_gt.ome.tif``.
        progress: show a progress bar.

    Returns:
        ``dict(slide, ground_truth, width, height, mpp, tissue_mm2, cells)``.
    """



    width, height = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if width < 16 or height < 16 or mpp <= 0:
        raise ValueError(f'need a slide of at least 16 x 16 px and mpp > 0, got {width} x {height}, {mpp}')
    out_path = Path(out_path)
    if tissue_mm2 is not None:
        tissue_fraction = min(1.0, tissue_mm2 / (width * height * (mpp / 1000) ** 2))
    rng = np.random.default_rng([seed, 11])
    cell = 32
    grid = _tissue_grid(rng, width, height, cell, tissue_fraction)
    tissue_px = int((grid >= 0.5).sum()) * cell * cell
    background = np.empty((tile, tile, 3), np.uint8)
    background[:] = BACKGROUND_RGB
    background = np.clip(background + np.random.default_rng([seed, 12]).normal(0, 1.5, background.shape), 0,
                         255).astype(np.uint8)
    chunks: List[CellChunk] = []
    next_id = [1]
    tmp_dir = tempfile.mkdtemp(dir=out_path.parent if out_path.parent.exists() else None, prefix='.slide-levels-')
    pixels = dict(PhysicalSizeX=mpp, PhysicalSizeXUnit='µm', PhysicalSizeY=mpp, PhysicalSizeYUnit='µm')
    steps = [1]
    while max(math.ceil(width / steps[-1]), math.ceil(height / steps[-1])) > tile:
        steps.append(steps[-1] * 4)
    bar = None
    if progress:
        bar = tqdm(total=math.ceil(width / tile) * math.ceil(height / tile), desc='synthetic slide', unit='tile')

    def draw(tx: int, ty: int) -> Tuple[np.ndarray, List[Cell]]:
        x0, y0 = tx * tile, ty * tile
        w, h = min(tile, width - x0), min(tile, height - y0)
        g0, g1 = y0 / cell, (y0 + h) / cell
        # tissue probability of this field: the grid resampled to pixels (bilinear, pixel centres)
        gx = (np.arange(w) + x0 + 0.5) / cell - 0.5
        gy = (np.arange(h) + y0 + 0.5) / cell - 0.5
        if grid[max(0, int(g0) - 1):int(math.ceil(g1)) + 1, max(0, x0 // cell - 1):(x0 + w) // cell + 2].max() < 0.5:
            return background[:h, :w], []
        alpha = cv2.remap(grid, np.tile(gx.astype(np.float32), (h, 1)),
                          np.tile(gy.astype(np.float32)[:, None], (1, w)), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        inside = alpha >= 0.5
        if not inside.any():
            return background[:h, :w], []
        field_rng = np.random.default_rng([seed, 13, ty, tx])
        rgb, class_maps = synthesize_image(field_rng, h, w, keep_border=True)
        soft = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 2.0)[..., None]
        img = (rgb * soft + background[:h, :w] * (1 - soft)).round().astype(np.uint8)
        cells = []
        for class_id in sorted(class_maps):
            cmap = class_maps[class_id]
            for value in np.unique(cmap[cmap > 0]):
                mask = cmap == value
                visible = mask & inside
                if visible.sum() < 0.5 * mask.sum() or not visible.any():
                    continue
                ys, xs = np.nonzero(visible)
                cy0, cx0 = int(ys.min()), int(xs.min())
                crop = visible[cy0:int(ys.max()) + 1, cx0:int(xs.max()) + 1]
                cells.append(Cell(id=0, label=class_id - 1, score=1.0, x1=x0 + cx0, y1=y0 + cy0, mask=crop))
        return img, cells

    def level0_tiles(level1: Optional[np.ndarray]) -> Iterator[np.ndarray]:
        for ty in range(math.ceil(height / tile)):
            # a whole row first: the writer stops pulling after the last tile, so nothing may follow a yield
            row_cells: List[Cell] = []
            row_imgs = []
            for tx in range(math.ceil(width / tile)):
                img, cells = draw(tx, ty)
                for c in cells:
                    c.id = next_id[0]
                    next_id[0] += 1
                row_cells += cells
                row_imgs.append(img)
                if level1 is not None:
                    _downsample_into(level1, img, tx * tile, ty * tile, 4)
            if row_cells:
                packed = pack_cells(row_cells)
                chunks.append(CellChunk(min(c.y1 for c in row_cells),
                                        max(c.y1 + c.mask.shape[0] for c in row_cells), lambda p=packed: p))
            for img in row_imgs:
                if bar is not None:
                    bar.update()
                yield img

    def write(tmp: str) -> None:
        with tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tif:
            levels = [None] * len(steps)
            for li in range(1, len(steps)):
                lw, lh = math.ceil(width / steps[li]), math.ceil(height / steps[li])
                levels[li] = np.lib.format.open_memmap(os.path.join(tmp_dir, f'level{li}.npy'), mode='w+',
                                                       dtype=np.uint8, shape=(lh, lw, 3))
            common = dict(dtype=np.uint8, tile=(tile, tile), compression='jpeg',
                          compressionargs=dict(level=jpeg_quality), photometric='rgb')
            tif.write(level0_tiles(levels[1] if len(steps) > 1 else None), shape=(height, width, 3),
                      subifds=len(steps) - 1, metadata=dict(axes='YXS', Name=slide_stem(str(out_path)), **pixels),
                      resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit='CENTIMETER', **common)
            for li in range(1, len(steps)):
                arr = levels[li]
                if li + 1 < len(steps):
                    for y in range(0, arr.shape[0], tile):
                        for x in range(0, arr.shape[1], tile):
                            _downsample_into(levels[li + 1], np.asarray(arr[y:y + tile, x:x + tile]), x, y, 4)
                tif.write(_tiles_of(arr, tile), shape=arr.shape, subfiletype=1, **common)
                arr.flush()

    try:
        atomic_write(out_path, write)
        gt_path = None
        if ground_truth:
            gt_path = out_path.with_name(f'{slide_stem(str(out_path))}_gt.ome.tif')
            atomic_write(gt_path, lambda p: write_label_pyramid(p, width, height, chunks, mpp))
    finally:
        if bar is not None:
            bar.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return dict(slide=str(out_path), ground_truth=str(gt_path) if gt_path else None, width=width, height=height,
                mpp=mpp, tissue_mm2=tissue_px * (mpp / 1000) ** 2, cells=next_id[0] - 1)


def _downsample_into(dst: np.ndarray, img: np.ndarray, x: int, y: int, factor: int) -> None:
    """Area-average ``img`` (at level coordinates ``x, y``) by ``factor`` into ``dst``."""
    h, w = img.shape[:2]
    dh, dw = math.ceil(h / factor), math.ceil(w / factor)
    dy, dx = y // factor, x // factor
    dh, dw = min(dh, dst.shape[0] - dy), min(dw, dst.shape[1] - dx)
    if dh > 0 and dw > 0:
        dst[dy:dy + dh, dx:dx + dw] = cv2.resize(img, (dw, dh), interpolation=cv2.INTER_AREA)


def read_ground_truth(gt_path: Union[str, Path], region: Optional[Tuple[int, int, int, int]] = None) -> tuple:
    """``(ids, classes)`` level-0 arrays of a ``*_gt.ome.tif`` (or a ``labels.ome.tif``), optionally a region."""

    with tifffile.TiffFile(str(gt_path)) as tif:
        ids = tif.series[0].levels[0].asarray() if region is None else _region(tif.series[0], region)
        classes = tif.series[1].levels[0].asarray() if region is None else _region(tif.series[1], region)
    return ids, classes


def _region(series, region: Tuple[int, int, int, int]) -> np.ndarray:
    import zarr  # deferred: zarr loads only when a slide is opened

    x, y, w, h = region
    store = series.aszarr(level=0)
    try:
        return np.asarray(zarr.open(store, mode='r')[y:y + h, x:x + w])
    finally:
        store.close()
