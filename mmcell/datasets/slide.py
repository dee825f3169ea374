"""Whole-slide images: a reader, a tissue mask and the tile layout + tile dataset that DataLoader workers read.

- :class:`SlideReader` opens SVS (Aperio, JPEG / JPEG 2000 tiles), pyramidal OME-TIFF and generic tiled TIFF through
  ``tiffslide`` (tifffile + imagecodecs), and plain TIFF / PNG / JPEG images through tifffile / OpenCV (held in
  memory: they are small). Microns per pixel come from the slide's metadata (``tiffslide.mpp-x``: SVS ``MPP``, OME
  ``PhysicalSizeX``, TIFF resolution tags); ``mpp=`` overrides them.
- :func:`tissue_mask`: Otsu on the saturation of a thumbnail (at least :data:`MIN_TISSUE_SATURATION`, so an empty
  slide has no tissue), closed, opened, holes filled, specks removed.
- :class:`SlideTiling`: tiles of ``tile`` px at the model's mpp, overlapping by ``overlap``, laid out in level-0
  pixels with :func:`mmcell.models.tiled.tile_starts` / :func:`tile_cores` (the rule :class:`TiledDetector` uses);
  tiles without tissue are skipped.
- :class:`SlideTileDataset`: reads one tile at the pyramid level nearest the model's mpp, resamples it exactly to the
  model's mpp and runs the config's test pipeline (its resize made the identity: ``model_mpp`` is the resolution
  of the network input), in DataLoader workers.

Every error is a :class:`SlideError` whose message is one line naming the slide.
"""
from __future__ import annotations

import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

SLIDE_SUFFIXES = ('.ome.tiff', '.ome.tif', '.svs', '.tiff', '.tif', '.ndpi', '.scn', '.bif', '.png', '.jpg',
                  '.jpeg')
PLAIN_IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')
MIN_TISSUE_SATURATION = 20  # of 255: white glass with noise stays below, H&E tissue is well above
THUMBNAIL_SIDE = 2048  # long side of the thumbnail used for the tissue mask and the preview
TISSUE_MIN_AREA_UM2 = 2000.0  # tissue specks smaller than this are dropped
TISSUE_CLOSE_UM = 20.0  # closing radius joining tissue fragments


class SlideError(ValueError):
    """A slide that cannot be read; the message is one line naming the file and the problem."""


def slide_stem(path: str) -> str:
    """The slide's file name without ``.svs`` / ``.tif`` / ``.tiff`` / ``.ome.tif`` / ``.ome.tiff`` (and images)."""
    name = osp.basename(str(path))
    for suffix in SLIDE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return osp.splitext(name)[0]


def _one_line(err: BaseException) -> str:
    text = ' '.join(str(err).split()) or type(err).__name__
    return text if len(text) < 300 else text[:297] + '...'


class SlideReader:
    """Read regions of a whole-slide image at any pyramid level (see the module docstring).

    Args:
        path: the slide file.
        mpp: microns per level-0 pixel; overrides the metadata (None: from the metadata, else :attr:`mpp` is None).

    Attributes:
        level_dimensions: ``(width, height)`` of each level, level 0 first.
        level_downsamples: level-0 pixels per level pixel, per level.
        mpp: microns per level-0 pixel (None when neither the metadata nor ``mpp`` gives it).
        metadata_mpp: what the metadata says (None if nothing).
    """

    def __init__(self, path: str, mpp: Optional[float] = None) -> None:
        self.path = str(path)
        if not osp.isfile(self.path):
            raise SlideError(f'{self.path}: no such slide file')
        self._slide: Any = None
        self._array: Optional[np.ndarray] = None
        self.metadata_mpp: Optional[float] = None
        if self.path.lower().endswith(PLAIN_IMAGE_SUFFIXES):
            self._array = self._read_plain_image()
        else:
            self._open_tiff()
        if self._array is not None:
            h, w = self._array.shape[:2]
            self.level_dimensions: List[Tuple[int, int]] = [(w, h)]
            self.level_downsamples: List[float] = [1.0]
        if mpp is not None and not (math.isfinite(mpp) and mpp > 0):
            raise SlideError(f'{self.path}: --mpp must be a positive number, not {mpp}')
        self.mpp = float(mpp) if mpp is not None else self.metadata_mpp

    # ------------------------------------------------------------------ opening
    def _read_plain_image(self) -> np.ndarray:
        img = cv2.imread(self.path, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise SlideError(f'{self.path}: not an image or slide (cannot decode it)')
        return _to_rgb(img[..., ::-1] if img.ndim == 3 else img, self.path)

    def _open_tiff(self) -> None:
        import tiffslide

        try:
            slide = tiffslide.TiffSlide(self.path)
            dims = [tuple(int(v) for v in d) for d in slide.level_dimensions]
        except Exception as err:  # tifffile/tiffslide raise many types for a file that is not a slide
            raise SlideError(f'{self.path}: not a slide or an unreadable TIFF ({_one_line(err)})') from None
        if not dims or min(dims[0]) <= 0:
            raise SlideError(f'{self.path}: not a slide (no image data)')
        mpp_x = slide.properties.get('tiffslide.mpp-x')
        try:
            self.metadata_mpp = float(mpp_x) if mpp_x not in (None, '') and float(mpp_x) > 0 else None
        except (TypeError, ValueError):
            self.metadata_mpp = None
        self._slide = slide
        self.level_dimensions = dims
        self.level_downsamples = [float(d) for d in slide.level_downsamples]

    def close(self) -> None:
        if self._slide is not None:
            self._slide.close()
            self._slide = None

    def __getstate__(self) -> dict:  # DataLoader workers re-open the file themselves
        state = dict(self.__dict__)
        state['_slide'] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._array is None:
            self._open_tiff()

    # ------------------------------------------------------------------ reading
    @property
    def dimensions(self) -> Tuple[int, int]:
        """``(width, height)`` of level 0."""
        return self.level_dimensions[0]

    def level_mpp(self, level: int) -> float:
        return float(self.mpp) * self.level_downsamples[level]

    def best_level_for(self, target_mpp: float) -> int:
        """The coarsest level still at least as fine as ``target_mpp`` (1 % tolerance); level 0 if none."""
        best = 0
        for level in range(len(self.level_dimensions)):
            if self.level_mpp(level) <= target_mpp * 1.01:
                best = level
        return best

    def read(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """RGB uint8 ``(height, width, 3)`` pixels of ``level`` at level coordinates ``(x, y)`` (clipped reads are
        padded with white)."""
        lw, lh = self.level_dimensions[level]
        out = np.full((height, width, 3), 255, np.uint8)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + width, lw), min(y + height, lh)
        if x1 <= x0 or y1 <= y0:
            return out
        try:
            if self._array is not None:
                part = self._array[y0:y1, x0:x1]
            else:
                part = self._read_level(level, x0, y0, x1 - x0, y1 - y0)
        except SlideError:
            raise
        except Exception as err:  # imagecodecs / tifffile decoding errors of a corrupt or truncated tile
            raise SlideError(f'{self.path}: cannot decode level {level} region x={x0} y={y0} {x1 - x0}x{y1 - y0} '
                             f'({_one_line(err)})') from None
        out[y0 - y:y1 - y, x0 - x:x1 - x] = part
        return out

    def _read_level(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        arr = self._slide.zarr_group[str(level)] if _has_zarr_levels(self._slide) else None
        if arr is not None:
            part = np.asarray(arr[y:y + height, x:x + width])
        else:
            ds = self.level_downsamples[level]
            part = np.asarray(self._slide.read_region((int(round(x * ds)), int(round(y * ds))), level,
                                                      (width, height), as_array=True))
        return _to_rgb(part, self.path)

    def thumbnail(self, max_side: int = THUMBNAIL_SIDE) -> Tuple[np.ndarray, float]:
        """An RGB thumbnail with long side <= ``max_side`` and its downsample (level-0 px per thumbnail px).

        Read from the coarsest level at least as fine as the thumbnail, in chunks, so memory stays bounded even for
        a slide without a pyramid.
        """
        w0, h0 = self.dimensions
        ds = max(1.0, max(w0, h0) / max_side)
        tw, th = max(1, int(math.ceil(w0 / ds))), max(1, int(math.ceil(h0 / ds)))
        level = 0
        for lv, d in enumerate(self.level_downsamples):
            if d <= ds * 1.01:
                level = lv
        lw, lh = self.level_dimensions[level]
        lds = self.level_downsamples[level]
        thumb = np.full((th, tw, 3), 255, np.uint8)
        chunk = 4096
        scale = lds / ds  # thumbnail px per level px
        for cy in range(0, lh, chunk):
            for cx in range(0, lw, chunk):
                part = self.read(level, cx, cy, min(chunk, lw - cx), min(chunk, lh - cy))
                ty0, tx0 = int(round(cy * scale)), int(round(cx * scale))
                ty1 = min(th, int(round((cy + part.shape[0]) * scale)))
                tx1 = min(tw, int(round((cx + part.shape[1]) * scale)))
                if ty1 > ty0 and tx1 > tx0:
                    thumb[ty0:ty1, tx0:tx1] = cv2.resize(part, (tx1 - tx0, ty1 - ty0), interpolation=cv2.INTER_AREA)
        return thumb, ds


def _has_zarr_levels(slide: Any) -> bool:
    try:
        return slide.zarr_group is not None
    except Exception:  # noqa: BLE001 -- older tiffslide: fall back to read_region
        return False


def _to_rgb(part: np.ndarray, path: str) -> np.ndarray:
    if part.dtype != np.uint8:
        if part.dtype.kind in 'ui' and part.size and part.max() > 255:
            part = (part / max(1, int(np.iinfo(part.dtype).max) // 255)).astype(np.uint8)
        else:
            part = part.astype(np.uint8)
    if part.ndim == 2:
        part = np.repeat(part[..., None], 3, axis=2)
    if part.ndim != 3 or part.shape[2] < 3:
        raise SlideError(f'{path}: not an RGB slide (pixels of shape {part.shape})')
    return np.ascontiguousarray(part[..., :3])


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
    from scipy import ndimage

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
        from mmcell.models.tiled import tile_cores

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
    from mmcell.models.tiled import tile_cores, tile_starts

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


class SlideTileDataset(torch.utils.data.Dataset):
    """Tiles of a slide through a model's test pipeline, for a DataLoader (reading happens in its workers).

    Each item is ``dict(tile_id, inputs, data_samples, rgb)`` where the sample's ``ori_shape`` is the tile's
    level-0 size (so the detector rescales boxes and masks to level-0 pixels) and ``rgb`` is the model-resolution
    tile (for intensity measurements); or ``dict(tile_id, error)`` with a one-line :class:`SlideError` message.

    Args:
        reader: the slide (pickled without its file handle; each worker re-opens it).
        tiling: the layout from :func:`plan_tiles`.
        tile_ids: which tiles to read.
        pipeline: the model's test pipeline config (its loading step is replaced by an in-memory one).
    """

    def __init__(self, reader: SlideReader, tiling: SlideTiling, tile_ids: Sequence[int],
                 pipeline: Sequence[dict]) -> None:
        self.reader, self.tiling, self.tile_ids = reader, tiling, list(tile_ids)
        # Tiles are read at the model's mpp already: the config's resize (an image-size rule for the training
        # data) becomes the identity, and the image comes from memory.
        self.pipeline_cfg = [dict(type='mmdet.Resize', scale_factor=1.0, keep_ratio=True)
                             if str(p.get('type', '')).endswith('Resize') else dict(p) for p in pipeline]
        self.pipeline_cfg[0] = dict(type='mmdet.LoadImageFromNDArray')
        self._pipeline = None

    def __len__(self) -> int:
        return len(self.tile_ids)

    def __getitem__(self, index: int) -> dict:
        from mmengine.dataset import Compose

        tile_id = self.tile_ids[index]
        try:
            rgb = read_tile(self.reader, self.tiling, tile_id)
        except SlideError as err:
            return dict(tile_id=tile_id, error=str(err))
        if self._pipeline is None:
            self._pipeline = Compose(self.pipeline_cfg)
        x, y, w, h = self.tiling.rect(tile_id)
        data = self._pipeline(dict(img=np.ascontiguousarray(rgb[..., ::-1]), img_id=tile_id,
                                   img_path=self.reader.path))
        sample = data['data_samples']
        img_h, img_w = sample.img_shape[:2]
        sample.set_metainfo(dict(ori_shape=(h, w), scale_factor=(img_w / w, img_h / h), tile_xy=(x, y)))
        return dict(tile_id=tile_id, inputs=data['inputs'], data_samples=sample, rgb=rgb)


def collate_tiles(batch: List[dict]) -> List[dict]:
    """DataLoader ``collate_fn``: keep the items as they are (the model's data preprocessor batches them)."""
    return batch


def die_with_parent(worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: on Linux, the worker is killed when its parent dies.

    A worker whose main process was killed (``kill -9``, a job scheduler) while the worker was blocked handing over a
    tile would otherwise live on as an orphan holding a slide and a pipeline in memory.
    """
    import ctypes
    import signal
    import sys

    if sys.platform.startswith('linux'):
        try:
            ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def worker_count(requested: Optional[int] = None) -> int:
    """DataLoader workers: ``requested``, else 1 (reading overlaps compute; more workers only compete for cores)."""
    if requested is not None:
        return max(0, int(requested))
    return 1 if (os.cpu_count() or 1) > 1 else 0
