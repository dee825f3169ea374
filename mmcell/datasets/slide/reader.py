"""Whole-slide images: the reader.

:class:`SlideReader` is the one slide interface of ``segment-slide`` and the QuPath converter, over three backends:

- ``tiffslide`` (tifffile + imagecodecs): SVS (Aperio, JPEG / JPEG 2000 tiles), pyramidal OME-TIFF, generic tiled
  TIFF;
- ``openslide`` (``openslide-python`` + ``openslide-bin``): NDPI (Hamamatsu), MRXS (3DHistech), SCN (Leica),
  Philips TIFF, VMS/VMU, BIF (Ventana), SVS, generic tiled TIFF;
- plain PNG / JPEG images through the one image reader (:func:`mmcell.datasets.image_io.read_image`; held in
  memory: they are small).

``reader='auto'`` picks by what can open the file: a format OpenSlide recognises as its own (vendor other than
``aperio`` / ``generic-tiff``: NDPI, MRXS, SCN, Philips, VMS, BIF) goes to OpenSlide; SVS, OME-TIFF and tiled TIFF
go to tiffslide, then to OpenSlide if tiffslide cannot open them. ``reader='tiffslide'`` / ``'openslide'`` forces
one. Region pixels go through the one RGB rule (:func:`mmcell.datasets.image_io.to_rgb_uint8`); OpenSlide's
transparent (never scanned) areas are white. A TIFF-family file that ends before its image data is refused, whichever
backend reads it. Microns per pixel come from the slide's metadata (``tiffslide.mpp-x`` / ``openslide.mpp-x``: SVS
``MPP``, OME ``PhysicalSizeX``, TIFF resolution tags, the vendors' own fields); ``mpp=`` overrides them.

Every error is a :class:`SlideError` whose message is one line naming the slide.
"""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Any, List, Optional, Tuple

import cv2
import numpy as np
import tifffile

from mmcell.utils.errors import HW3FormatError, InputError, one_line

from ..image_io import page_data_end, read_image, to_rgb_uint8

SLIDE_SUFFIXES = ('.ome.tiff', '.ome.tif', '.svs', '.tiff', '.tif', '.ndpi', '.scn', '.bif', '.mrxs', '.vms', '.vmu',
                  '.svslide', '.png', '.jpg', '.jpeg')
PLAIN_IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')
READERS = ('auto', 'tiffslide', 'openslide')
#: OpenSlide vendors that tiffslide reads as well (auto tries tiffslide first for them)
_TIFFSLIDE_VENDORS = (None, 'aperio', 'generic-tiff')
THUMBNAIL_SIDE = 2048  # long side of the thumbnail used for the tissue mask and the preview


class SlideError(InputError):
    """A slide that cannot be read; the message is one line naming the file and the problem."""


class TruncatedSlideError(SlideError):
    """A TIFF-family slide whose file ends before its image data (no other backend is tried)."""


def slide_stem(path: str) -> str:
    """The slide's file name without ``.svs`` / ``.tif`` / ``.tiff`` / ``.ome.tif`` / ``.ome.tiff`` (and images)."""
    name = osp.basename(str(path))
    for suffix in SLIDE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return osp.splitext(name)[0]


class SlideReader:
    """Read regions of a whole-slide image at any pyramid level (see the module docstring).

    Args:
        path: the slide file.
        mpp: microns per level-0 pixel; overrides the metadata (None: from the metadata, else :attr:`mpp` is None).
        reader: ``'auto'``, ``'tiffslide'`` or ``'openslide'`` (see the module docstring).

    Attributes:
        level_dimensions: ``(width, height)`` of each level, level 0 first.
        level_downsamples: level-0 pixels per level pixel, per level.
        mpp: microns per level-0 pixel (None when neither the metadata nor ``mpp`` gives it).
        metadata_mpp: what the metadata says (None if nothing).
        backend: ``'tiffslide'``, ``'openslide'`` or ``'image'`` (what opened the file).
    """

    def __init__(self, path: str, mpp: Optional[float] = None, reader: str = 'auto') -> None:
        self.path = str(path)
        if reader not in READERS:
            raise SlideError(f'--reader {reader}: choose from {", ".join(READERS)}')
        if not osp.isfile(self.path):
            raise SlideError(f'{self.path}: no such slide file')
        self._slide: Any = None
        self._array: Optional[np.ndarray] = None
        self.metadata_mpp: Optional[float] = None
        self.reader = reader
        self.backend = 'image'
        if self.path.lower().endswith(PLAIN_IMAGE_SUFFIXES) and reader == 'auto':
            self._array = self._read_plain_image()
        else:
            self._open()
        if self._array is not None:
            h, w = self._array.shape[:2]
            self.level_dimensions: List[Tuple[int, int]] = [(w, h)]
            self.level_downsamples: List[float] = [1.0]
        if mpp is not None and not (math.isfinite(mpp) and mpp > 0):
            raise SlideError(f'{self.path}: --mpp must be a positive number, not {mpp}')
        self.mpp = float(mpp) if mpp is not None else self.metadata_mpp

    # ------------------------------------------------------------------ opening
    def _read_plain_image(self) -> np.ndarray:
        try:
            return read_image(self.path)
        except HW3FormatError as err:
            raise SlideError(f'{self.path}: not an image or slide ({err.problem})') from None

    def _open(self) -> None:
        """Open with the backend ``self.reader`` names, or (auto) with the first that can (module docstring).

        A TIFF-family file (SVS, OME-TIFF, NDPI, Philips, tiled TIFF) cut short is refused first, whichever backend
        would read it (:func:`_check_complete`).
        """
        _check_complete(self.path)
        if self.reader == 'tiffslide':
            return self._open_tiff()
        if self.reader == 'openslide':
            return self._open_openslide()
        vendor = _openslide_vendor(self.path)
        if vendor not in _TIFFSLIDE_VENDORS:
            return self._open_openslide()
        try:
            return self._open_tiff()
        except TruncatedSlideError:
            raise
        except SlideError as tiff_err:
            if vendor is None:
                raise SlideError(f'{self.path}: not a slide that tiffslide or OpenSlide opens '
                                 f'({str(tiff_err).split(": ", 1)[-1]})') from None
            try:
                return self._open_openslide()
            except SlideError:
                raise tiff_err from None  # tiffslide's reason: the file is a TIFF both claim

    def _open_tiff(self) -> None:
        import tiffslide  # deferred: tiffslide (zarr, fsspec) loads only when a slide is opened

        try:
            slide = tiffslide.TiffSlide(self.path)
            dims = [tuple(int(v) for v in d) for d in slide.level_dimensions]
        except Exception as err:  # tifffile/tiffslide raise many types for a file that is not a slide
            raise SlideError(f'{self.path}: not a slide or an unreadable TIFF ({one_line(err, limit=300)})') from None
        self._adopt(slide, 'tiffslide', dims)

    def _open_openslide(self) -> None:
        try:
            import openslide  # deferred: the OpenSlide library loads only when a slide needs it
        except ImportError:
            raise SlideError(f'{self.path}: needs OpenSlide, which is not installed (pip install openslide-python '
                             'openslide-bin)') from None
        try:
            slide = openslide.OpenSlide(self.path)
            dims = [tuple(int(v) for v in d) for d in slide.level_dimensions]
        except Exception as err:  # OpenSlideUnsupportedFormatError, OpenSlideError, OSError
            raise SlideError(f'{self.path}: OpenSlide cannot open it ({one_line(err, limit=300)})') from None
        self._adopt(slide, 'openslide', dims)

    def _adopt(self, slide: Any, backend: str, dims: List[Tuple[int, int]]) -> None:
        """Keep an opened slide of either backend (both speak OpenSlide's API: ``level_downsamples``, ``properties``
        with ``<backend>.mpp-x``)."""
        if not dims or min(dims[0]) <= 0:
            slide.close()
            raise SlideError(f'{self.path}: not a slide (no image data)')
        self.metadata_mpp = _positive(slide.properties.get(f'{backend}.mpp-x'))
        self._slide = slide
        self.backend = backend
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
            self._open_openslide() if self.backend == 'openslide' else self._open_tiff()

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
                             f'({one_line(err, limit=300)})') from None
        out[y0 - y:y1 - y, x0 - x:x1 - x] = part
        return out

    def _read_level(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        if self.backend == 'openslide':
            ds = self.level_downsamples[level]
            rgba = np.asarray(self._slide.read_region((int(round(x * ds)), int(round(y * ds))), level,
                                                      (width, height)))
            # premultiplied alpha: areas never scanned (alpha 0) become white, the rest keeps its colour
            alpha = rgba[..., 3:4].astype(np.int16)
            return (rgba[..., :3].astype(np.int16) + 255 - alpha).clip(0, 255).astype(np.uint8)
        arr = self._slide.zarr_group[str(level)] if _has_zarr_levels(self._slide) else None
        if arr is not None:
            part = np.asarray(arr[y:y + height, x:x + width])
        else:
            ds = self.level_downsamples[level]
            part = np.asarray(self._slide.read_region((int(round(x * ds)), int(round(y * ds))), level,
                                                      (width, height), as_array=True))
        try:
            return to_rgb_uint8(part, self.path)
        except HW3FormatError as err:
            raise SlideError(f'{self.path}: not an RGB slide ({err.problem})') from None

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


def _check_complete(path: str) -> None:
    """Refuse a TIFF-family slide whose file ends before its image data: a copy cut short (tifffile only warns,
    ``invalid page offset``, and reads what is there; OpenSlide fails with "short read") must stop with one line
    saying so, never give results that look whole.

    Every page of every pyramid level lists where its tiles or strips lie; all must end inside the file. Files that
    are not TIFFs (MRXS, VMS, a text file) are left to the backends, which check their own files.
    """
    try:
        tif = tifffile.TiffFile(path)
    except Exception:  # noqa: BLE001 -- not a TIFF: the backend that opens it (or none) says what it is
        return
    with tif:
        _check_pages(tif, path)


def _check_pages(tif: Any, path: str) -> None:
    """The check of :func:`_check_complete` on an open ``tifffile.TiffFile``."""
    size = os.path.getsize(path)
    if not tif.series:
        raise TruncatedSlideError(f'{path}: damaged or truncated slide (no image series could be read)')
    for level, page in enumerate(tif.series[0].levels):
        for p in getattr(page, 'pages', [page]):
            if page_data_end(p) > size:
                raise TruncatedSlideError(f'{path}: truncated slide (level {level} image data ends past the end of '
                                          f'the file, which has {size} bytes; copy or download it again)')


def _positive(value: Any) -> Optional[float]:
    try:
        return float(value) if value not in (None, '') and float(value) > 0 else None
    except (TypeError, ValueError):
        return None


def _openslide_vendor(path: str) -> Optional[str]:
    """OpenSlide's name for the file's format (``hamamatsu``, ``mirax``, ``aperio``, ...); None when OpenSlide is
    missing or does not know it."""
    try:
        import openslide  # deferred: see _open_openslide
    except ImportError:
        return None
    try:
        return openslide.OpenSlide.detect_format(path)
    except Exception:  # noqa: BLE001 -- unreadable file: the backend that tries it reports why
        return None


def _has_zarr_levels(slide: Any) -> bool:
    try:
        return slide.zarr_group is not None
    except Exception:  # noqa: BLE001 -- older tiffslide: fall back to read_region
        return False
