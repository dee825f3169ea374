"""The one image reader of mmcell, and the one rule that turns any decoded image into RGB uint8.

:func:`read_image` is what the pipeline's ``LoadCellImage``, ``mmcell segment``, the converters and the slide reader
(plain images) call: TIFF (and the first page, i.e. level 0, of an SVS) through tifffile + imagecodecs, PNG / JPEG /
BMP through Pillow, each decoded once. :func:`to_rgb_uint8` is the one conversion rule (also for slide regions):

- layout: (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB, (H, W, 4) RGBA, or channels-first (C, H, W) with
  C <= 4 < W (planar TIFF); alpha is dropped, grey is repeated into R, G and B;
- dtype: uint8 as is; uint16 scaled linearly with rounding (65535 -> 255, ``(v * 255 + 32767) // 65535``); floats in
  [0, 1] times 255, other floats clipped to [0, 255] (NaN -> 0); other integers clipped to [0, 255].

Every problem raises :class:`~mmcell.utils.errors.HW3FormatError` ``"<path>: <problem>"``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple

import numpy as np
import tifffile
from PIL import Image

from mmcell.utils.errors import HW3FileNotFoundError, HW3FormatError, PathLike, first_line
from mmcell.utils.fileio import atomic_write

TIFF_SUFFIXES = ('.tif', '.tiff', '.svs')
PILLOW_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')
IMAGE_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES


def page_data_end(page) -> int:
    """The byte where a TIFF page's image data (strips or tiles) ends; 0 for a page that lists none. A file cut
    short still has readable headers, but this lies past its end."""
    offsets, counts = getattr(page, 'dataoffsets', None) or (), getattr(page, 'databytecounts', None) or ()
    return max((int(o) + int(c) for o, c in zip(offsets, counts)), default=0)


def _open_tiff(path: Path):
    if not path.is_file():
        raise HW3FileNotFoundError(path, 'file not found')
    try:
        tif = tifffile.TiffFile(str(path))
    except Exception as err:  # tifffile raises TiffFileError, ValueError, struct.error... for a bad header
        raise HW3FormatError(path, f'unreadable TIFF ({first_line(err)})') from None
    if not tif.pages:
        tif.close()
        raise HW3FormatError(path, 'unreadable TIFF (no image pages)')
    data_end, size = page_data_end(tif.pages[0]), path.stat().st_size
    if data_end > size:
        tif.close()
        raise HW3FormatError(path, f'truncated TIFF (image data ends at byte {data_end}, file has {size})')
    return tif


def read_tiff(path: PathLike) -> np.ndarray:
    """Decode the first page of a TIFF file.

    Args:
        path: the file.

    Raises:
        HW3FormatError: missing, unreadable or truncated file, or LZW data without ``imagecodecs`` installed.
    """
    path = Path(path)
    tif = _open_tiff(path)
    try:
        return tif.pages[0].asarray()
    except Exception as err:
        msg = first_line(err)
        if 'imagecodecs' in msg:
            raise HW3FormatError(
                path, f'{msg}: this TIFF is compressed (LZW); install the decoder with '
                '`pip install imagecodecs`') from None
        raise HW3FormatError(path, f'unreadable TIFF ({msg})') from None
    finally:
        tif.close()


def tiff_shape(path: PathLike) -> Tuple[int, ...]:
    """Shape of the first page of a TIFF file, read from its header only (no decoding)."""
    path = Path(path)
    tif = _open_tiff(path)
    try:
        return tuple(int(s) for s in tif.pages[0].shape)
    finally:
        tif.close()


def image_hw(shape: Sequence[int]) -> Tuple[int, int]:
    """(H, W) of an image shape: (H, W), (H, W, C) or planar (C, H, W) with C <= 4."""
    if len(shape) == 3 and shape[0] <= 4 < shape[2]:
        return int(shape[1]), int(shape[2])
    return int(shape[0]), int(shape[1])


def to_rgb_uint8(img: np.ndarray, path: PathLike = '<array>') -> np.ndarray:
    """Convert a decoded image (grey, grey+alpha, RGB, RGBA; uint8, uint16 or float) to (H, W, 3) uint8 RGB.

    uint16 is scaled linearly (65535 -> 255); floats in [0, 1] are scaled by 255, other floats are clipped.
    """
    if img.ndim == 3 and img.shape[0] <= 4 < img.shape[2]:
        img = np.moveaxis(img, 0, -1)  # planar-separate TIFF
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise HW3FormatError(path, f'unsupported image shape {img.shape} (expected grey, RGB or RGBA)')
    img = img[..., :3] if img.shape[2] >= 3 else np.repeat(img[..., :1], 3, axis=2)
    if img.dtype == np.uint8:
        pass
    elif img.dtype == np.uint16:
        img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif img.dtype.kind == 'f':
        scale = 255.0 if np.nanmax(img) <= 1.0 else 1.0
        img = np.clip(np.nan_to_num(img) * scale + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype.kind in 'iu':
        img = np.clip(img, 0, 255).astype(np.uint8)
    else:
        raise HW3FormatError(path, f'unsupported image dtype {img.dtype}')
    return np.ascontiguousarray(img)


def read_pillow(path: PathLike) -> np.ndarray:
    """Decode a PNG/JPEG/BMP file as stored (no mode conversion: 16-bit PNG stays uint16)."""

    path = Path(path)
    if not path.is_file():
        raise HW3FileNotFoundError(path, 'file not found')
    try:
        with Image.open(path) as img:
            return np.asarray(img)
    except Exception as err:  # PIL raises UnidentifiedImageError, OSError, SyntaxError... on a bad file
        raise HW3FormatError(path, f'unreadable image ({first_line(err)})') from None


def read_raw(path: PathLike) -> np.ndarray:
    """Decode an image file as stored (TIFF first page through tifffile, others through Pillow): label images,
    class maps and anything that must not be converted."""
    if str(path).lower().endswith(TIFF_SUFFIXES):
        return read_tiff(path)
    return read_pillow(path)


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file (TIFF / SVS level 0, PNG, JPEG, BMP) as (H, W, 3) uint8 RGB (see the module docstring).

    Raises:
        HW3FormatError: missing, unreadable or truncated file, unsupported shape or dtype, LZW without imagecodecs.
    """
    return to_rgb_uint8(read_raw(path), path)


def write_image_tif(path: PathLike, rgb: np.ndarray) -> None:
    """Write (H, W, 3) uint8 RGB as the contest does: (H, W, 4) RGBA, alpha 255, LZW-compressed (atomically)."""

    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    atomic_write(path, lambda tmp: tifffile.imwrite(
        tmp, rgba, photometric='rgb', compression='lzw', extrasamples=['unassalpha']))


