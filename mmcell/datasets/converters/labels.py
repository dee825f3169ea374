"""Label images: an image, its instance label image and optionally a class map, matched by name.

Naming rule (the names ``mmcell segment`` writes, so its output converts back): for an image ``<stem>.<ext>``
(.tif/.png/.jpg/...) the instance label image is ``<stem>_labels.tif`` (or ``.tiff``/``.png``; 0 = background,
every other integer one instance, any dtype holding integers) and the optional class map ``<stem>_classes.tif``
(or ``.png``; per-pixel class 1..K, 0 = none), anywhere below SRC. An instance's class is the most frequent
non-zero class among its pixels (ties to the lower class); without a class map every instance is class 1. An
instance with no classed pixel is an error. Default class map: value K -> ``class<K>.tif``; the output has as many
classes as the highest class present.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple, Optional

import numpy as np

from mmcell.datasets.converters.common import (
    IMAGE_SUFFIXES,
    ConvertedImage,
    check_same_size,
    files_by_stem,
    instances_from_label_map,
    majority_class,
)
from mmcell.datasets.image_io import read_image, read_raw
from mmcell.utils.errors import HW3FormatError, PathLike

LABELS_SUFFIX = '_labels'
CLASSES_SUFFIX = '_classes'
LABEL_FILE_SUFFIXES = ('.tif', '.tiff', '.png')
#: source classes are the class-map values; the output keeps as many as the highest one present
CLASS_NAMES = tuple(f'class{k}' for k in range(1, 256))
CLASS_NAMES_FROM_DATA = True


class LabelsItem(NamedTuple):
    """An image, its label image and optional class map."""
    stem: str
    image: Path
    labels: Path
    classes: Optional[Path]


def find_items(src: PathLike) -> List[LabelsItem]:
    """Images and their ``<stem>_labels`` / ``<stem>_classes`` files below ``src`` (see the naming rule)."""
    files = files_by_stem(src, set(IMAGE_SUFFIXES) | set(LABEL_FILE_SUFFIXES), 'file')
    labels = {s[:-len(LABELS_SUFFIX)]: p for s, p in files.items() if s.endswith(LABELS_SUFFIX)}
    classes = {s[:-len(CLASSES_SUFFIX)]: p for s, p in files.items() if s.endswith(CLASSES_SUFFIX)}
    images = {s: p for s, p in files.items() if not s.endswith((LABELS_SUFFIX, CLASSES_SUFFIX))}
    for stem, path in list(labels.items()) + list(classes.items()):
        if stem not in images:
            raise HW3FormatError(path, f'no image with stem {stem!r} below {src}')
    for stem, path in classes.items():
        if stem not in labels:
            raise HW3FormatError(path, f'class map without its label image {stem}{LABELS_SUFFIX}.tif')
    items = []
    for stem, image in sorted(images.items()):
        if stem not in labels:
            raise HW3FormatError(image, f'no label image {stem}{LABELS_SUFFIX}.tif/.png below {src}')
        items.append(LabelsItem(stem, image, labels[stem], classes.get(stem)))
    if not items:
        raise HW3FormatError(src, f'no image with a <stem>{LABELS_SUFFIX}.tif label image found')
    return items


def load_item(item: LabelsItem) -> ConvertedImage:
    """Instances of the label image, classes from the class map (majority) or 1."""
    rgb = read_image(item.image)
    raw = read_raw(item.labels)
    check_same_size(item.labels, raw.shape, rgb.shape, item.image)
    labels, _ = instances_from_label_map(raw, item.labels)
    n = int(labels.max()) if labels.size else 0
    if item.classes is None:
        return ConvertedImage(item.stem, item.labels, rgb, labels, np.concatenate([[0], np.ones(n, np.int64)]))
    cls_map = read_raw(item.classes)
    check_same_size(item.classes, cls_map.shape, rgb.shape, item.image)
    instances_from_label_map(cls_map, item.classes)  # the same checks: 2-D, integer, non-negative values
    classes = majority_class(labels, cls_map, n)
    if n and (classes[1:] == 0).any():
        raise HW3FormatError(item.classes, f'{int((classes[1:] == 0).sum())} instances of {item.labels.name} have '
                             'no class (class map is 0 under all their pixels)')
    if classes.max(initial=0) > len(CLASS_NAMES):
        raise HW3FormatError(item.classes, f'class {classes.max()} above {len(CLASS_NAMES)}')
    return ConvertedImage(item.stem, item.labels, rgb, labels, classes.astype(np.int64))
