"""CoNIC 2022 (Lizard at 20x): ``images.npy`` (N, 256, 256, 3) + ``labels.npy`` (N, 256, 256, 2).

Channel 0 of ``labels.npy`` is the instance map, channel 1 the class map (per pixel). Every ``images.npy`` below
SRC is paired with the ``labels.npy`` whose parent folder has the same name. Output stem:
``<parent folder>_<index:04d>``. The class of an instance is the most frequent class among its pixels (they agree
in the release). Default class map: Neutrophil -> 1, Epithelial -> 2, Lymphocyte -> 3, Plasma -> 4,
Eosinophil -> 5, Connective -> 6 (CoNIC's own ids).
"""
from __future__ import annotations

from typing import List

import numpy as np

from mmcell.utils.errors import HW3FormatError, PathLike

from .common import ConvertedImage, instances_from_label_map, majority_class
from .npy_arrays import NpyItem, find_npy_items, npy_rgb

CLASS_NAMES = ('Neutrophil', 'Epithelial', 'Lymphocyte', 'Plasma', 'Eosinophil', 'Connective')
LABEL_FILE = 'labels.npy'


def find_items(src: PathLike) -> List[NpyItem]:
    """One item per patch of every ``images.npy`` + ``labels.npy`` pair below ``src``."""
    return find_npy_items(src, LABEL_FILE, channels=2)


def load_item(item: NpyItem) -> ConvertedImage:
    """Instances from channel 0, their class from channel 1."""
    arr = np.asarray(item.annotations[item.index])
    try:
        labels, _ = instances_from_label_map(arr[..., 0], item.annotation_path)
    except HW3FormatError as err:
        raise HW3FormatError(item.annotation_path, f'patch {item.index}: {err.problem}') from None
    cls_map = arr[..., 1]
    if (cls_map < 0).any() or (cls_map != np.round(cls_map)).any() or cls_map.max() > len(CLASS_NAMES):
        raise HW3FormatError(item.annotation_path, f'patch {item.index}: class values must be integers '
                             f'0..{len(CLASS_NAMES)}')
    n = int(labels.max())
    classes = majority_class(labels, cls_map, n)
    missing = int(np.count_nonzero(classes[1:] == 0))
    if missing:
        raise HW3FormatError(item.annotation_path, f'patch {item.index}: {missing} instances have class 0')
    return ConvertedImage(stem=item.stem, source=item.annotation_path, rgb=npy_rgb(item), labels=labels,
                          classes=classes)
