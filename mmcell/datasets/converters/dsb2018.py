"""Data Science Bowl 2018 (stage 1 train): ``<id>/images/<id>.png`` + ``<id>/masks/*.png``, one binary PNG per
nucleus.

Every ``images/<stem>.png`` below SRC is paired with the ``masks/`` folder beside it (the release layout); a mask
must be binary (0 and one other value, e.g. 255), of the image's size. Output stem: ``<id>``. Default class map:
``nucleus -> class1``. Masks that overlap (rare) follow the overlap rule of :mod:`.common`; an empty mask is
skipped and counted.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple

import numpy as np

from mmcell.datasets.converters.common import ConvertedImage, check_same_size
from mmcell.datasets.image_io import read_image, read_pillow
from mmcell.structures.label_image import paint_instances
from mmcell.utils.errors import HW3FormatError, PathLike

CLASS_NAMES = ('nucleus',)


class Dsb2018Item(NamedTuple):
    """An image and its folder of per-instance masks."""
    stem: str
    image: Path
    masks: List[Path]


def find_items(src: PathLike) -> List[Dsb2018Item]:
    """``*/images/<stem>.png`` with a ``masks/`` folder beside ``images/``.

    Raises:
        HW3FormatError: an image without ``masks/`` (or an empty one), a ``masks/`` folder without image, two
            images of one stem.
    """
    items, seen = [], {}
    for image in sorted(Path(src).rglob('images/*.png')):
        if image.stem in seen:
            raise HW3FormatError(image, f'image stem {image.stem!r} also used by {seen[image.stem]}')
        seen[image.stem] = image
        mask_dir = image.parent.parent / 'masks'
        masks = sorted(mask_dir.glob('*.png')) if mask_dir.is_dir() else []
        if not masks:
            raise HW3FormatError(image, f'no mask PNGs in {mask_dir} (expected <id>/masks/*.png beside '
                                 '<id>/images/<id>.png)')
        items.append(Dsb2018Item(image.stem, image, masks))
    for mask_dir in sorted(Path(src).rglob('masks')):
        if mask_dir.is_dir() and not any((mask_dir.parent / 'images').glob('*.png')):
            raise HW3FormatError(mask_dir, 'masks without an image (expected ../images/<id>.png)')
    if not items:
        raise HW3FormatError(src, 'no <id>/images/<id>.png found')
    return items


def load_item(item: Dsb2018Item) -> ConvertedImage:
    """One instance per mask PNG."""
    rgb = read_image(item.image)
    height, width = rgb.shape[:2]
    pixels = []
    for path in item.masks:
        mask = read_pillow(path)
        if mask.ndim == 3:  # some masks are saved as RGB(A) with equal channels
            mask = mask[..., 0]
        check_same_size(path, mask.shape, rgb.shape, item.image)
        values = np.unique(mask)
        if len(values) > 2 or (len(values) == 2 and values[0] != 0):
            shown = ', '.join(f'{v:g}' for v in values[:4])
            raise HW3FormatError(path, f'mask is not binary (values {shown}{", ..." if len(values) > 4 else ""}; '
                                 'expected 0 and one foreground value)')
        pixels.append(np.flatnonzero(mask.ravel()).astype(np.int64))
    labels, kept, contested = paint_instances(pixels, height, width)
    return ConvertedImage(stem=item.stem, source=item.image, rgb=rgb, labels=labels,
                          classes=np.concatenate([[0], np.ones(len(kept), np.int64)]),
                          skipped=len(pixels) - len(kept), contested=contested)
