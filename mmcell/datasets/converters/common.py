"""What every source-format converter shares: the converted-image record, the overlap rule, image/array readers
and the HW3 writer.

A format module (``monuseg``, ``monusac``, ``pannuke``, ``conic``, ``dsb2018``, ``labels``, ``consep``) provides

- ``CLASS_NAMES``: its source classes; source class id ``k`` is ``CLASS_NAMES[k - 1]``;
- ``find_items(src) -> list``: one item per image (anything with a ``stem`` attribute), matched below ``src``;
- ``load_item(item) -> ConvertedImage``: the image and its instances.

:func:`mmcell.datasets.converters.convert_to_hw3` drives them and writes the HW3 layout.

Overlap rule (used by every format whose instances can overlap: polygons, per-instance PNGs, PanNuke channels):
**a pixel claimed by several instances goes to the smallest of them** (fewest pixels before resolution; ties to
the instance listed first). Annotated overlaps are thin slivers where an annotator drew two touching nuclei; the
rule keeps every annotated pixel labelled, never lets a large nucleus swallow a small neighbour (a lymphocyte
beside a tumour nucleus), and does not carve artificial background gaps between touching nuclei (which "contested
pixels go to no one" would, teaching the model gaps that are not in the tissue). An instance left with no pixel
is skipped and counted.

Every problem with an input raises :class:`~mmcell.datasets.hw3_format.HW3FormatError` (``"<path>: <problem>"``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from mmcell.utils.errors import HW3FormatError, PathLike, first_line

#: image file suffixes read by the converters (.svs: Aperio, level 0 through tifffile + imagecodecs)
IMAGE_SUFFIXES = ('.tif', '.tiff', '.png', '.svs', '.jpg', '.jpeg', '.bmp')


@dataclass
class ConvertedImage:
    """One source image ready to be written in the HW3 layout.

    Attributes:
        stem: output folder name ``train/<stem>/``.
        source: the file messages name (image or annotation).
        rgb: (H, W, 3) uint8.
        labels: (H, W) int32 instance label image, 0 = background, ids 1..N.
        classes: (N + 1,) int64 source class id of each label id (index 0 unused).
        skipped: instances dropped (degenerate, or no pixel left after the overlap rule).
        contested: pixels claimed by more than one instance.
        ignored: regions skipped on purpose, by name (e.g. MoNuSAC ``Ambiguous`` areas).
    """
    stem: str
    source: Path
    rgb: np.ndarray
    labels: np.ndarray
    classes: np.ndarray
    skipped: int = 0
    contested: int = 0
    ignored: Dict[str, int] = field(default_factory=dict)


def instances_from_label_map(labels: np.ndarray, path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Check an instance label image and relabel it to ids 1..N.

    Returns:
        ``(labels, ids)``: (H, W) int32 with ids 1..N, and the source id of each new id (``ids[k - 1]``).

    Raises:
        HW3FormatError: not 2-D, not numeric, NaN/inf, negative or fractional values.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise HW3FormatError(path, f'instance label image must be 2-D (H, W), got shape {labels.shape}')
    if labels.dtype.kind not in 'fiub':
        raise HW3FormatError(path, f'unsupported label dtype {labels.dtype} (expected integers)')
    if labels.dtype.kind == 'f':
        if not np.isfinite(labels).all():
            raise HW3FormatError(path, 'label image holds NaN or inf')
        if (labels != np.round(labels)).any():
            value = labels[labels != np.round(labels)][0]
            raise HW3FormatError(path, f'label image holds non-integer value {value:g} (instance ids are integers)')
    if labels.dtype.kind != 'u' and labels.size and labels.min() < 0:
        raise HW3FormatError(path, f'label image holds negative value {labels.min():g}')
    ids, inverse = np.unique(labels.astype(np.int64), return_inverse=True)
    if len(ids) and ids[0] == 0:
        new = inverse.reshape(labels.shape).astype(np.int32)
        return new, ids[1:]
    return (inverse.reshape(labels.shape) + 1).astype(np.int32), ids


def majority_class(labels: np.ndarray, class_map: np.ndarray, num_instances: int) -> np.ndarray:
    """Class of each instance = the most frequent non-zero class among its pixels (ties: the lower class).

    Returns:
        (N + 1,) int64, index 0 unused; instances without any classed pixel get 0.
    """
    cls = class_map.astype(np.int64).ravel()
    lab = labels.astype(np.int64).ravel()
    fg = (lab > 0) & (cls > 0)
    num_cls = int(cls.max()) + 1 if cls.size else 1
    counts = np.bincount(lab[fg] * num_cls + cls[fg], minlength=(num_instances + 1) * num_cls)
    counts = counts.reshape(num_instances + 1, num_cls)
    result = np.where(counts.max(axis=1) > 0, counts.argmax(axis=1), 0)
    result[0] = 0
    return result


# ------------------------------------------------------------------------------------------------------- inputs
def load_npy(path: PathLike) -> np.ndarray:
    """Memory-map a ``.npy`` file (no pickles: ``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise HW3FormatError(path, 'file not found')
    try:
        return np.load(path, mmap_mode='r', allow_pickle=False)
    except Exception as err:  # ValueError for pickled object arrays, bad headers...
        raise HW3FormatError(path, f'unreadable .npy ({first_line(err)})') from None


def files_by_stem(src: PathLike, suffixes: Iterable[str], what: str, skip_dirs: Iterable[str] = ()) -> Dict[str, Path]:
    """Files below ``src`` (recursively) with one of ``suffixes``, keyed by file name without extension.

    Args:
        skip_dirs: leave out files below folders of these names (case-insensitive).

    Raises:
        HW3FormatError: two files with the same stem.
    """
    suffixes = tuple(s.lower() for s in suffixes)
    skip = {d.lower() for d in skip_dirs}
    found: Dict[str, Path] = {}
    for path in sorted(Path(src).rglob('*')):
        if path.suffix.lower() not in suffixes or not path.is_file() or path.name.startswith('.'):
            continue
        if skip and any(part.lower() in skip for part in path.relative_to(src).parts[:-1]):
            continue
        if path.stem in found:
            raise HW3FormatError(path, f'{what} stem {path.stem!r} also used by {found[path.stem]} '
                                 '(images and annotations are matched by stem: stems must be unique)')
        found[path.stem] = path
    return found


def match_by_stem(images: Dict[str, Path], annotations: Dict[str, Path], src: PathLike,
                  ann_what: str) -> List[Tuple[str, Path, Path]]:
    """Pair images and annotations by stem; an annotation without image, or the reverse, is an error.

    Returns:
        ``[(stem, image, annotation)]`` sorted by stem.
    """
    for stem, ann in annotations.items():
        if stem not in images:
            raise HW3FormatError(ann, f'no image with stem {stem!r} below {src} '
                                 f'(expected one of {", ".join(IMAGE_SUFFIXES)})')
    for stem, img in images.items():
        if stem not in annotations:
            raise HW3FormatError(img, f'no {ann_what} with stem {stem!r} below {src}')
    if not images:
        raise HW3FormatError(src, f'no images with {ann_what}s found')
    return [(stem, images[stem], annotations[stem]) for stem in sorted(images)]


def check_same_size(path: PathLike, shape: Sequence[int], image_shape: Sequence[int], image: PathLike) -> None:
    """Raise unless an annotation's (H, W) equals its image's."""
    if tuple(shape[:2]) != tuple(image_shape[:2]):
        raise HW3FormatError(path, f'annotation size {tuple(shape[:2])} differs from image {image} of size '
                             f'{tuple(image_shape[:2])}')
