"""PanNuke: folds of 256x256 patches as numpy arrays.

Input: a fold's ``images.npy`` (N, H, W, 3) (uint8, or float holding 0..255) and ``masks.npy`` (N, H, W, 6):
channels 0-4 are instance maps of Neoplastic, Inflammatory, Connective, Dead, Epithelial nuclei, channel 5 the
background. Every ``images.npy`` below SRC is paired with the ``masks.npy`` whose parent folder has the same name
(the release: ``Fold 1/images/fold1/images.npy`` + ``Fold 1/masks/fold1/masks.npy``, or both in one folder).
Output stem: ``<parent folder>_<index:04d>`` (``fold1_0000``). Default class map: Neoplastic -> 1,
Inflammatory -> 2, Connective -> 3, Dead -> 4, Epithelial -> 5. An instance is a (channel, id) pair; a pixel in
two channels is contested and follows the overlap rule of :mod:`.common`.
"""
from __future__ import annotations

from typing import List

import numpy as np

from mmcell.datasets.converters.common import ConvertedImage
from mmcell.structures.label_image import paint_instances
from mmcell.utils.errors import HW3FormatError, PathLike

from .npy_arrays import NpyItem, find_npy_items, npy_rgb

CLASS_NAMES = ('Neoplastic', 'Inflammatory', 'Connective', 'Dead', 'Epithelial')
MASK_FILE = 'masks.npy'


def find_items(src: PathLike) -> List[NpyItem]:
    """One item per patch of every fold (``images.npy`` + ``masks.npy``) below ``src``."""
    return find_npy_items(src, MASK_FILE, channels=6)


def load_item(item: NpyItem) -> ConvertedImage:
    """Split each class channel into its instances and paint them with the overlap rule."""
    masks = np.asarray(item.annotations[item.index])
    height, width = masks.shape[:2]
    pixels, classes = [], []
    for channel in range(len(CLASS_NAMES)):
        inst = masks[..., channel]
        if inst.dtype.kind == 'f' and (not np.isfinite(inst).all() or (inst != np.round(inst)).any()):
            raise HW3FormatError(item.annotation_path, f'patch {item.index} channel {channel}: non-integer '
                                 'instance ids')
        if inst.min() < 0:
            raise HW3FormatError(item.annotation_path, f'patch {item.index} channel {channel}: negative ids')
        flat = inst.astype(np.int64).ravel()
        order = np.argsort(flat, kind='stable')
        ids, starts = np.unique(flat[order], return_index=True)
        for inst_id, group in zip(ids, np.split(order, starts[1:])):
            if inst_id > 0:
                pixels.append(group)
                classes.append(channel + 1)
    labels, kept, contested = paint_instances(pixels, height, width)
    return ConvertedImage(stem=item.stem, source=item.annotation_path, rgb=npy_rgb(item),
                          labels=labels, classes=np.concatenate([[0], np.asarray(classes, np.int64)[kept]]),
                          skipped=len(pixels) - len(kept), contested=contested)
