"""Numpy-array data sets (PanNuke, CoNIC): pairing ``images.npy`` with its annotation array, one item per patch."""
from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple

import numpy as np

from mmcell.utils.errors import HW3FormatError, PathLike

from .common import load_npy

IMAGES_FILE = 'images.npy'


class NpyItem(NamedTuple):
    """Patch ``index`` of a memory-mapped images/annotations pair."""
    stem: str
    index: int
    images: np.ndarray
    annotations: np.ndarray
    images_path: Path
    annotation_path: Path


def check_images_array(images: np.ndarray, path: PathLike) -> None:
    """``images.npy`` must be (N, H, W, 3), uint8 or float."""
    if images.ndim != 4 or images.shape[3] != 3:
        raise HW3FormatError(path, f'expected shape (N, H, W, 3), got {images.shape}')
    if images.dtype != np.uint8 and images.dtype.kind != 'f':
        raise HW3FormatError(path, f'unsupported dtype {images.dtype} (expected uint8 or float 0..255)')


def npy_rgb(item: NpyItem) -> np.ndarray:
    """Patch as (H, W, 3) uint8 (float arrays hold 0..255, as PanNuke's)."""
    img = np.asarray(item.images[item.index])
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if not np.isfinite(img).all() or img.min() < 0 or img.max() > 255:
        raise HW3FormatError(item.images_path, f'patch {item.index}: float pixel values outside 0..255')
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def check_annotation_array(images: np.ndarray, annotations: np.ndarray, images_path: Path, path: Path,
                           channels: int) -> None:
    """The annotation array must be (N, H, W, ``channels``) over the same patches as ``images``, with numeric ids."""
    check_images_array(images, images_path)
    if annotations.ndim != 4 or annotations.shape[3] != channels or annotations.shape[:3] != images.shape[:3]:
        raise HW3FormatError(path, f'expected shape (N, H, W, {channels}) matching images {images.shape[:3]}, '
                             f'got {annotations.shape}')
    if annotations.dtype.kind not in 'fiu':
        raise HW3FormatError(path, f'unsupported dtype {annotations.dtype} (expected integer or float ids)')


def find_npy_items(src: PathLike, annotation_file: str, channels: int) -> List[NpyItem]:
    """Pair every ``images.npy`` below ``src`` with the ``annotation_file`` (``channels`` per pixel) whose parent
    folder has the same name.

    Raises:
        HW3FormatError: an array without its partner, two arrays of one name, or arrays of the wrong shape/dtype.
    """
    def by_parent(name: str) -> dict:
        found = {}
        for path in sorted(Path(src).rglob(name)):
            key = path.parent.name
            if key in found:
                raise HW3FormatError(path, f'another {name} below a folder named {key!r}: {found[key]} '
                                     '(arrays are paired by their folder name)')
            found[key] = path
        return found

    images, annotations = by_parent(IMAGES_FILE), by_parent(annotation_file)
    for key, path in annotations.items():
        if key not in images:
            raise HW3FormatError(path, f'no {IMAGES_FILE} in a folder named {key!r} below {src}')
    items: List[NpyItem] = []
    for key, path in images.items():
        if key not in annotations:
            raise HW3FormatError(path, f'no {annotation_file} in a folder named {key!r} below {src}')
        imgs, anns = load_npy(path), load_npy(annotations[key])
        check_annotation_array(imgs, anns, path, annotations[key], channels)
        items += [NpyItem(f'{key}_{i:04d}', i, imgs, anns, path, annotations[key]) for i in range(len(imgs))]
    if not items:
        raise HW3FormatError(src, f'no {IMAGES_FILE} + {annotation_file} pair found')
    return items
