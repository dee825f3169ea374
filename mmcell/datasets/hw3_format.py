"""The one place that reads and writes the NYCU VRDL 2025 HW3 data format (see ``HW3_FORMAT.md``).

Layout::

    DATA_ROOT/train/<uuid>/image.tif            (H, W, 4) uint8 RGBA, LZW
    DATA_ROOT/train/<uuid>/class1.tif..class4.tif   (H, W) float64, 0 = background, other value = one instance
    DATA_ROOT/test_release/<uuid>.tif
    DATA_ROOT/test_image_name_to_ids.json       [{"file_name", "id", "height", "width"}, ...]

Instance ids are image-global, non-contiguous floats that may exceed 255: an instance is the set of pixels with one
value, never a connected component (touching cells share no gap), and ids are never cast to uint8.

Masks are returned as COCO compressed RLE built directly from the pixel indices of each id, so parsing an image
with hundreds of cells never allocates one full-size bitmap per cell. Every problem with a file raises
:class:`HW3FormatError` whose message is ``"<path>: <problem>"``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import tifffile

from mmcell.structures.rle import runs_to_rle
from mmcell.utils.errors import HW3FileNotFoundError, HW3FormatError, PathLike, first_line
from mmcell.utils.fileio import atomic_write

from .image_io import image_hw, read_tiff, tiff_shape

#: highest ``class<K>.tif`` the reader accepts (converted public sets have up to 6 classes; label images store
#: classes as uint8); how many a data set really has is its ``metainfo`` classes, checked by the dataset class
MAX_CLASSES = 255
IMAGE_FILE = 'image.tif'
CLASS_FILE_RE = re.compile(r'^class(\d+)\.tiff?$', re.IGNORECASE)


class InstanceMask(NamedTuple):
    """One annotated nucleus.

    Attributes:
        class_id: contest category 1..4 (file ``class<K>.tif``).
        instance_id: the value of the instance in its class map (image-global, may exceed 255).
        rle: COCO compressed RLE ``{'size': [h, w], 'counts': str}``.
        bbox: ``[x1, y1, x2, y2]`` with exclusive right/bottom edges (mmdet convention for masks).
        area: number of pixels.
    """
    class_id: int
    instance_id: int
    rle: dict
    bbox: List[float]
    area: int


def read_class_map(path: PathLike, shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Read and validate one ``class<K>.tif`` map as (H, W) float64.

    Args:
        path: the class map.
        shape: the (H, W) of the image it annotates; a different shape is an error.

    Raises:
        HW3FormatError: wrong shape, NaN/inf, negative or non-integer values.
    """
    cmap = read_tiff(path)
    if cmap.ndim == 3 and 1 in (cmap.shape[0], cmap.shape[2]):
        cmap = cmap.reshape(cmap.shape[1:] if cmap.shape[0] == 1 else cmap.shape[:2])
    if cmap.ndim != 2:
        raise HW3FormatError(path, f'class map must be 2-D (H, W), got shape {cmap.shape}')
    if shape is not None and tuple(cmap.shape) != tuple(shape):
        raise HW3FormatError(path, f'mask shape {tuple(cmap.shape)} differs from image shape {tuple(shape)}')
    if cmap.dtype.kind not in 'fiub':
        raise HW3FormatError(path, f'unsupported class map dtype {cmap.dtype}')
    return cmap.astype(np.float64, copy=False)


def class_map_instances(cmap: np.ndarray, class_id: int, path: PathLike = '<array>') -> List[InstanceMask]:
    """Split one class map into its instances (one per distinct non-zero value), as compact RLE.

    Args:
        cmap: (H, W) class map; 0 is background.
        class_id: the contest category 1..4 of this map.
        path: the file name used in error messages.
    """
    height, width = cmap.shape
    flat = cmap.ravel(order='F')  # COCO RLE runs down columns
    index = np.flatnonzero(flat)  # NaN is non-zero, so it is caught below
    if index.size == 0:
        return []
    values = flat[index]
    if not np.isfinite(values).all():
        raise HW3FormatError(path, 'class map holds NaN or infinite values (ids must be integers >= 0)')
    if (values < 0).any():
        raise HW3FormatError(path, f'class map holds negative ids (min {values.min():g})')
    if (values != np.round(values)).any():
        bad = values[values != np.round(values)][0]
        raise HW3FormatError(path, f'class map holds non-integer ids (e.g. {bad!r})')
    order = np.argsort(values, kind='stable')  # stable: pixel indices stay sorted within an id
    values, index = values[order], index[order]
    ids, first = np.unique(values, return_index=True)
    last = np.r_[first[1:], values.size]
    instances = []
    for inst_id, lo, hi in zip(ids.tolist(), first.tolist(), last.tolist()):
        pix = index[lo:hi]
        xs, ys = pix // height, pix % height
        bbox = [float(xs[0]), float(ys.min()), float(xs[-1] + 1), float(ys.max() + 1)]
        instances.append(InstanceMask(class_id, int(inst_id), runs_to_rle(pix, height, width, text=True), bbox,
                                      int(pix.size)))
    return instances


# ----------------------------------------------------------------------------------------------- sample folders
def find_class_files(sample_dir: PathLike) -> Dict[int, Path]:
    """Map class id -> ``class<K>.tif`` path of one training folder (classes without instances are absent).

    Raises:
        HW3FormatError: a ``class<K>.tif`` with K outside 1..MAX_CLASSES (e.g. ``class0.tif``) or duplicated.
            Whether K fits the data set's classes is checked by :class:`~mmcell.datasets.CellInstanceDataset`.
    """
    sample_dir = Path(sample_dir)
    found: Dict[int, Path] = {}
    for entry in sorted(sample_dir.iterdir()):
        match = CLASS_FILE_RE.match(entry.name)
        if not match:
            continue
        k = int(match.group(1))
        if not 1 <= k <= MAX_CLASSES:
            raise HW3FormatError(entry, f'unexpected class file (classes are class1..class{MAX_CLASSES})')
        if k in found:
            raise HW3FormatError(entry, f'class {k} given twice ({found[k].name} and {entry.name})')
        found[k] = entry
    return found


def sample_files(sample_dir: PathLike) -> List[Path]:
    """The files that define one training sample (``image.tif`` + class maps), validating the folder layout.

    Raises:
        HW3FormatError: not a folder, empty folder, missing ``image.tif``, bad class file name.
    """
    sample_dir = Path(sample_dir)
    if not sample_dir.is_dir():
        raise HW3FileNotFoundError(sample_dir, 'sample folder not found')
    if not any(sample_dir.iterdir()):
        raise HW3FormatError(sample_dir, 'empty sample folder (expected image.tif and class<K>.tif files)')
    image = sample_dir / IMAGE_FILE
    if not image.is_file():
        raise HW3FileNotFoundError(image, 'missing image.tif in sample folder')
    return [image] + list(find_class_files(sample_dir).values())


def load_instance_masks(sample_dir: PathLike,
                        image_shape: Optional[Tuple[int, int]] = None) -> List[InstanceMask]:
    """Parse all class maps of one ``train/<uuid>/`` folder.

    Args:
        sample_dir: the folder holding ``image.tif`` and ``class<K>.tif``.
        image_shape: (H, W) of ``image.tif``; read from its header when None.

    Returns:
        Instances sorted by class then id.

    Raises:
        HW3FormatError: any layout or content problem, including one id used in two class files.
    """
    sample_dir = Path(sample_dir)
    files = sample_files(sample_dir)
    if image_shape is None:
        image_shape = image_hw(tiff_shape(files[0]))
    instances: List[InstanceMask] = []
    owner: Dict[int, Path] = {}
    for class_id, path in find_class_files(sample_dir).items():
        found = class_map_instances(read_class_map(path, image_shape), class_id, path)
        for inst in found:
            if inst.instance_id in owner:
                raise HW3FormatError(
                    path, f'instance id {inst.instance_id} also used in {owner[inst.instance_id].name} '
                    '(ids must be unique across the class files of an image)')
            owner[inst.instance_id] = path
        instances.extend(found)
    return instances


def parse_sample(sample_dir: PathLike) -> dict:
    """Parse one training folder into ``dict(height, width, instances=[dict(class_id, instance_id, bbox, area,
    mask)])`` (plain JSON-able types; used by the parse cache and the COCO converter)."""
    sample_dir = Path(sample_dir)
    files = sample_files(sample_dir)
    height, width = image_hw(tiff_shape(files[0]))
    instances = load_instance_masks(sample_dir, (height, width))
    return dict(height=height, width=width,
                instances=[dict(class_id=i.class_id, instance_id=i.instance_id, bbox=i.bbox, area=i.area,
                                mask=i.rle) for i in instances])


def list_train_samples(data_root: PathLike, img_dir: str = 'train') -> List[Path]:
    """Sorted ``train/<uuid>`` folders of a data root.

    Raises:
        HW3FormatError: no such folder or no sample in it.
    """
    train_dir = Path(data_root) / img_dir
    if not train_dir.is_dir():
        raise HW3FileNotFoundError(train_dir, 'training folder not found (expected DATA_ROOT/train/<id>/image.tif)')
    samples = sorted(p for p in train_dir.iterdir() if p.is_dir())
    if not samples:
        raise HW3FormatError(train_dir, 'no sample folders')
    return samples


# ------------------------------------------------------------------------------------------------- test split
def read_test_ids(json_path: PathLike, test_dir: PathLike) -> List[dict]:
    """Read ``test_image_name_to_ids.json`` and check it against the images in ``test_release/``.

    Args:
        json_path: the ids file.
        test_dir: the folder of test TIFFs.

    Returns:
        ``[dict(file_name, id, height, width)]`` sorted by id.

    Raises:
        HW3FormatError: unreadable json, a missing key, duplicate names or ids, a listed file that is not in
            ``test_dir``, or a test image the json does not list.
    """
    json_path, test_dir = Path(json_path), Path(test_dir)
    if not json_path.is_file():
        raise HW3FileNotFoundError(json_path, 'test ids file not found')
    if not test_dir.is_dir():
        raise HW3FileNotFoundError(test_dir, 'test image folder not found')
    try:
        entries = json.loads(json_path.read_text())
    except (OSError, ValueError) as err:
        raise HW3FormatError(json_path, f'unreadable JSON ({first_line(err)})') from None
    if not isinstance(entries, list):
        raise HW3FormatError(json_path, 'expected a JSON list of {"file_name", "id", "height", "width"}')
    result, names, ids = [], set(), set()
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {'file_name', 'id'} <= set(entry):
            raise HW3FormatError(json_path, f'entry {n} lacks "file_name" or "id": {entry!r}')
        name, img_id = str(entry['file_name']), entry['id']
        if name in names:
            raise HW3FormatError(json_path, f'file {name} listed twice')
        if img_id in ids:
            raise HW3FormatError(json_path, f'id {img_id} used twice')
        names.add(name)
        ids.add(img_id)
        if not (test_dir / name).is_file():
            raise HW3FormatError(json_path, f'names {name}, which is not in {test_dir}')
        result.append(dict(file_name=name, id=int(img_id), height=int(entry.get('height', 0)),
                           width=int(entry.get('width', 0))))
    on_disk = sorted(p.name for p in test_dir.iterdir() if p.suffix.lower() in ('.tif', '.tiff'))
    missing = [name for name in on_disk if name not in names]
    if missing:
        raise HW3FormatError(json_path, f'misses test image {missing[0]} ({len(missing)} unlisted in {test_dir})')
    for entry in result:
        if entry['height'] <= 0 or entry['width'] <= 0:  # sizes are optional in the file: take them from the TIFF
            entry['height'], entry['width'] = image_hw(tiff_shape(test_dir / entry['file_name']))
    return sorted(result, key=lambda e: e['id'])


# ------------------------------------------------------------------------------------------------------ writing
def write_class_map(path: PathLike, cmap: np.ndarray) -> None:
    """Write a (H, W) class map as the contest does: float64, uncompressed (atomically)."""

    atomic_write(path, lambda tmp: tifffile.imwrite(tmp, np.asarray(cmap, dtype=np.float64)))
