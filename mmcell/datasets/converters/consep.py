"""CoNSeP and HoVer-Net's ``.mat`` layout: images + MATLAB label files (CoNSeP, and HoVer-Net's own outputs).

Input: ``<stem>.png`` / ``.jpg`` / ``.tif`` images (the release: ``Images/``) and ``<stem>.mat`` label files
(``Labels/``) anywhere below SRC, matched by stem; folders named ``Overlay`` (the release's drawn outlines, same
stems) are left out.
A label file holds

- ``inst_map`` (H, W): 0 = background, nucleus k = k (any integers; ids need not be contiguous);
- ``inst_type`` (N, 1): the type of nucleus k at row k-1 (N = the highest id); without it the type of a nucleus is
  the most frequent non-zero ``type_map`` value under it (HoVer-Net writes both; ``type_map`` (H, W) is the type of
  each pixel);
- ``inst_centroid`` (N, 2), x, y: not needed.

Types (source class ids, ``--consep-types``):

- ``merged`` (default): types 1..4 are CoNSeP's merged classes, type k -> ``class<k>.tif``: other 1,
  inflammatory 2, epithelial 3, spindle 4 (HoVer-Net's 4-class scheme; what ``../shared/data/consep-train`` holds).
- ``original``: types 1..7 are the release's original types (other, inflammatory, healthy epithelial,
  dysplastic/malignant epithelial, fibroblast, muscle, endothelial), merged by HoVer-Net's rule: 1 -> other (1),
  2 -> inflammatory (2), 3 and 4 -> epithelial (3), 5, 6 and 7 -> spindle (4). ``--class-map`` with the original
  names (or ids) overrides the merge, e.g. keeps 7 classes.

Output stem: the image's (``train_1``; the patches of ``consep-train`` keep ``train_<image>_<patch>``, so a
cross-validation can group them by source image: :func:`mmcell.apis.crossval.cv_group_of`). The output class
names go to ``OUT/classes.json``. Every bad file (unreadable ``.mat``, a missing key, ``inst_type`` rows that do not
match the ids, a type outside the scheme, an ``inst_map`` of another size than its image) stops the run with one
line naming it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple

import numpy as np

from mmcell.datasets.converters.common import (
    IMAGE_SUFFIXES,
    ConvertedImage,
    check_same_size,
    files_by_stem,
    instances_from_label_map,
    majority_class,
    match_by_stem,
)
from mmcell.datasets.image_io import read_image
from mmcell.utils.errors import HW3FormatError, PathLike, first_line

#: CoNSeP's merged classes (HoVer-Net's 4-class scheme), type k = ``CLASS_NAMES[k - 1]``
CLASS_NAMES = ('other', 'inflammatory', 'epithelial', 'spindle')
#: the 7 types of the CoNSeP release
ORIGINAL_TYPES = ('other', 'inflammatory', 'healthy epithelial', 'malignant epithelial', 'fibroblast', 'muscle',
                  'endothelial')
#: HoVer-Net's merge of the original types into :data:`CLASS_NAMES`
HOVERNET_MERGE = {1: 1, 2: 2, 3: 3, 4: 3, 5: 4, 6: 4, 7: 4}
TYPE_SCHEMES = ('merged', 'original')
#: the ``convert_to_hw3`` options this format takes
OPTIONS = ('consep_types',)
#: folders left out when looking for images (the release's outline drawings share the image stems)
SKIP_DIRS = ('overlay',)


class MatItem(NamedTuple):
    """An image, its ``.mat`` label file and the type scheme of its ids."""
    stem: str
    image: Path
    mat: Path
    types: str = 'merged'


def class_scheme(consep_types: str = 'merged') -> Tuple[Tuple[str, ...], Dict[int, int], Tuple[str, ...]]:
    """``(source names, default source -> K map, names of the default's output classes)`` of a type scheme."""
    if consep_types not in TYPE_SCHEMES:
        raise ValueError(f'--consep-types {consep_types}: expected one of {", ".join(TYPE_SCHEMES)}')
    if consep_types == 'original':
        return ORIGINAL_TYPES, dict(HOVERNET_MERGE), CLASS_NAMES
    return CLASS_NAMES, {k: k for k in range(1, len(CLASS_NAMES) + 1)}, CLASS_NAMES


def find_items(src: PathLike, consep_types: str = 'merged') -> List[MatItem]:
    """Images and ``.mat`` files below ``src`` matched by stem (``Overlay/`` folders left out)."""
    class_scheme(consep_types)
    images = files_by_stem(src, IMAGE_SUFFIXES, 'image', skip_dirs=SKIP_DIRS)
    mats = files_by_stem(src, ('.mat',), 'label file')
    return [MatItem(*t, types=consep_types) for t in match_by_stem(images, mats, src, '.mat label file')]


def load_mat(path: Path) -> dict:
    """The variables of a MATLAB label file (v4 to v7.2; one line naming the file if it does not read)."""
    from scipy.io import loadmat  # deferred: only this format needs it

    try:
        return loadmat(str(path))
    except Exception as err:  # ValueError, MatReadError, NotImplementedError (v7.3 HDF5), OSError, ...
        raise HW3FormatError(path, f'unreadable .mat ({first_line(err)})') from None


def load_item(item: MatItem) -> ConvertedImage:
    """The nuclei of ``inst_map``, their types from ``inst_type`` (else the ``type_map`` majority)."""
    names = class_scheme(item.types)[0]
    mat = load_mat(item.mat)
    keys = sorted(k for k in mat if not k.startswith('__'))
    if 'inst_map' not in mat:
        raise HW3FormatError(item.mat, f'no inst_map (keys: {", ".join(keys) or "none"}; expected the HoVer-Net '
                             'layout: inst_map, type_map, inst_type, inst_centroid)')
    rgb = read_image(item.image)
    raw = np.asarray(mat['inst_map'])
    check_same_size(item.mat, raw.shape, rgb.shape, item.image)
    labels, ids = instances_from_label_map(raw, item.mat)
    if 'inst_type' in mat:
        types = np.asarray(mat['inst_type'])
        top = int(ids.max()) if len(ids) else 0
        if types.dtype.kind not in 'iuf' or (types.size and types.size != max(types.shape)):  # (0, 1): no nuclei
            raise HW3FormatError(item.mat, f'inst_type must be an (N, 1) column of type ids, got shape {types.shape} '
                                 f'{types.dtype}')
        types = types.ravel()
        if len(types) != top:
            raise HW3FormatError(item.mat, f'inst_type has {len(types)} rows but the highest inst_map id is {top} '
                                 f'({len(ids)} nuclei; row k-1 is the type of nucleus k)')
        source_types = types[ids - 1] if len(ids) else types[:0]
        kind = 'inst_type'
    elif 'type_map' in mat:
        type_map = np.asarray(mat['type_map'])
        check_same_size(item.mat, type_map.shape, rgb.shape, item.image)
        instances_from_label_map(type_map, item.mat)  # the same checks: 2-D, integer, non-negative values
        source_types = majority_class(labels, type_map, len(ids))[1:]
        kind = 'type_map'
    else:
        raise HW3FormatError(item.mat, f'no inst_type or type_map (keys: {", ".join(keys)}): the nuclei have no '
                             'types')
    bad = (source_types < 1) | (source_types > len(names)) | (source_types != np.round(source_types))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        value = float(source_types[k])
        hint = '; the release\'s 7 types need --consep-types original' \
            if item.types == 'merged' and value in range(len(names) + 1, len(ORIGINAL_TYPES) + 1) else ''
        raise HW3FormatError(item.mat, f'{kind}: nucleus {int(ids[k])} has type {value:g} (expected '
                             f'1..{len(names)}: {", ".join(names)}{hint})')
    classes = np.concatenate([[0], source_types.astype(np.int64)])
    return ConvertedImage(stem=item.stem, source=item.mat, rgb=rgb, labels=labels, classes=classes)
