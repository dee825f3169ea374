"""The converter driver: public nucleus data sets -> the HW3 layout (HW3 -> COCO json is :mod:`.hw3_coco`).

:func:`convert_to_hw3` writes ``OUT/train/<stem>/image.tif`` + ``class<K>.tif`` (and with ``test_release=True``
``OUT/test_release/<stem>.tif``, ``test_image_name_to_ids.json`` and ``test_gt_coco.json``) so that every data set
trains, validates and predicts through :class:`~mmcell.datasets.CellInstanceDataset` /
:class:`~mmcell.datasets.CellTestDataset`. One module per source format (see :data:`FORMATS`); the rasterisation
rule is in :mod:`.imagescope`, the overlap rule in :func:`mmcell.structures.label_image.paint_instances`.

Default class maps (source class -> ``class<K>.tif``):

==========  ==========================================================================================
monuseg     nucleus -> 1
monusac     Epithelial -> 1, Lymphocyte -> 2, Macrophage -> 3, Neutrophil -> 4 (= HW3); Ambiguous skipped
pannuke     Neoplastic -> 1, Inflammatory -> 2, Connective -> 3, Dead -> 4, Epithelial -> 5
conic       Neutrophil -> 1, Epithelial -> 2, Lymphocyte -> 3, Plasma -> 4, Eosinophil -> 5, Connective -> 6
dsb2018     nucleus -> 1
labels      class-map value K -> K (no class map: every instance -> 1)
qupath      --class-map Name=K; else the HW3 map for MoNuSAC names; else the names in order of first appearance
consep      type k -> k: other 1, inflammatory 2, epithelial 3, spindle 4 (``--consep-types original``: the 7
            original types merged by HoVer-Net's rule)
==========  ==========================================================================================

A format's options (``find_items`` keywords, ``--reader`` ...) are listed in its ``OPTIONS``. A format whose default
class map is not the identity (CoNSeP's original types) provides ``class_scheme(**options)``: its source names, its
default source -> K map and the names of the default's output classes. Formats whose classes are named by the data
(``CLASS_NAMES_FROM_EXPORTS``: QuPath) resolve them with ``source_classes(items, class_map)`` after ``find_items``
and cut several images from one item (``load_item`` returns a list). Every run writes ``OUT/classes.json`` (the
output class names and the source name -> K map).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from mmcell.datasets.coco_gt import coco_categories, samples_to_coco
from mmcell.datasets.converters import conic, consep, dsb2018, labels, monusac, monuseg, pannuke, qupath
from mmcell.datasets.converters.common import ConvertedImage
from mmcell.datasets.converters.hw3_coco import hw3_to_coco
from mmcell.datasets.hw3_format import parse_sample, write_class_map
from mmcell.datasets.image_io import write_image_tif
from mmcell.datasets.metainfo import CLASSES as CLASS_NAMES
from mmcell.utils.errors import HW3FormatError, PathLike
from mmcell.utils.fileio import atomic_dir, write_json

#: ``--format`` name -> its converter module (``find_items(src)``, ``load_item(item)``, ``DEFAULT_CLASSES``)
CONVERTERS = dict(monuseg=monuseg, monusac=monusac, pannuke=pannuke, conic=conic, dsb2018=dsb2018, labels=labels,
                  qupath=qupath, consep=consep)
FORMATS = tuple(CONVERTERS)

#: files of a converted test release (the same names as the synthetic generator writes)
TEST_IDS_FILE = 'test_image_name_to_ids.json'
TEST_GT_FILE = 'test_gt_coco.json'
#: the output class names and the source name -> K map of a conversion
CLASSES_FILE = 'classes.json'


def format_module(name: str):
    """The converter module of ``--format name``.

    Raises:
        ValueError: unknown format (one line listing the known ones).
    """
    if name not in FORMATS:
        raise ValueError(f'--format {name}: unknown format (choose from {", ".join(FORMATS)})')
    return CONVERTERS[name]


def parse_class_map(spec: Optional[Sequence[str]], class_names: Sequence[str],
                    default: Optional[Dict[int, int]] = None) -> Dict[int, int]:
    """Source class id -> output class id from ``KEY=K`` entries.

    ``KEY`` is a source class name (case-insensitive) or its source id (1-based, see the format's
    ``CLASS_NAMES``); ``K`` is the output ``class<K>.tif`` (0 drops the class). Classes not listed keep their
    ``default`` target (default: their own id).

    Raises:
        ValueError: malformed entry or unknown class (one line).
    """
    mapping = {k: (default or {}).get(k, k) for k in range(1, len(class_names) + 1)}
    lower = {name.lower(): k for k, name in enumerate(class_names, start=1)}
    for entry in spec or ():
        key, sep, value = entry.partition('=')
        key = key.strip()
        if not sep or not value.strip().isdigit():
            raise ValueError(f'--class-map {entry}: expected SOURCE=K (K an integer >= 0, 0 drops the class)')
        if key.lower() in lower:
            src = lower[key.lower()]
        elif key.isdigit() and int(key) in mapping:
            src = int(key)
        else:
            known = ', '.join(f'{k}={n}' for k, n in enumerate(class_names, start=1)) if len(class_names) <= 10 \
                else f'1..{len(class_names)}'
            raise ValueError(f'--class-map {entry}: unknown source class {key!r} (known: {known})')
        mapping[src] = int(value)
    return mapping


def output_class_names(mapping: Dict[int, int], class_names: Sequence[str], default: Optional[Dict[int, int]] = None,
                       default_names: Sequence[str] = ()) -> List[str]:
    """Names of ``class1..classK`` after a class map: the source names joined by ``+`` (``classK`` if none); an
    output class made of exactly the sources of a ``default`` class keeps that class's name in ``default_names``."""
    merged = {}
    for j, name in enumerate(default_names, start=1):
        merged[frozenset(s for s, t in (default or {}).items() if t == j)] = name
    top = max(mapping.values(), default=0)
    names = []
    for k in range(1, top + 1):
        sources = [s for s in sorted(mapping) if mapping[s] == k]
        names.append(merged.get(frozenset(sources)) or '+'.join(class_names[s - 1] for s in sources) or f'class{k}')
    return names


def class_scheme(module, options: Dict[str, Any]) -> Tuple[Sequence[str], Optional[Dict[int, int]], Sequence[str]]:
    """``(source names, default source -> K map, names of its output classes)`` of a format with its options."""
    if hasattr(module, 'class_scheme'):
        return module.class_scheme(**options)
    return module.CLASS_NAMES, None, ()


@dataclass
class ConversionReport:
    """What :func:`convert_to_hw3` wrote: per output class the instance count, and the totals."""
    out: Path
    class_names: List[str]
    images: int = 0
    instances: Dict[int, int] = field(default_factory=dict)
    skipped: int = 0
    contested: int = 0
    ignored: Dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        per_class = ', '.join(f'class{k} {self.class_names[k - 1]} {n:,}' for k, n in sorted(self.instances.items()))
        ignored = ''.join(f', {n:,} {name or "unnamed"} regions ignored' for name, n in self.ignored.items())
        return (f'{self.out}: {self.images} images, {sum(self.instances.values()):,} instances ({per_class or "none"})'
                f', {self.skipped:,} skipped, {self.contested:,} contested px{ignored}')


def image_summary(image: ConvertedImage, classes: np.ndarray, class_names: Sequence[str]) -> str:
    """The one line printed per converted image."""
    counts = np.bincount(classes[1:], minlength=len(class_names) + 1)
    per_class = ', '.join(f'{class_names[k - 1]} {int(counts[k])}' for k in range(1, len(counts)) if counts[k])
    ignored = ''.join(f', {n} {name or "unnamed"} ignored' for name, n in image.ignored.items())
    return (f'{image.stem}: {int(np.count_nonzero(classes[1:]))} instances ({per_class or "none"}), '
            f'{image.skipped} skipped, {image.contested} contested px{ignored}')


def write_hw3_sample(sample_dir: Path, rgb: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> None:
    """Write ``image.tif`` and one ``class<K>.tif`` per class present (instance ids = label ids, 0 = none)."""
    write_image_tif(sample_dir / 'image.tif', rgb)
    cls_of_pixel = classes[labels]
    for k in np.unique(classes[1:]):
        if k > 0:
            write_class_map(sample_dir / f'class{k}.tif', np.where(cls_of_pixel == k, labels, 0))


def convert_to_hw3(fmt: str, src: PathLike, out: PathLike, class_map: Optional[Sequence[str]] = None,
                   test_release: bool = False, overwrite: bool = False, progress: bool = True,
                   log: Callable[[str], None] = print, **options: Any) -> ConversionReport:
    """Convert a public data set in ``src`` to the HW3 layout in ``out``.

    Everything is written into a temp folder beside ``out`` that replaces ``out`` only when the whole conversion
    succeeded (:func:`mmcell.utils.fileio.atomic_dir`): a failed run leaves no half-written ``out``.

    Args:
        fmt: one of :data:`FORMATS`.
        src: the source folder (images and annotations are found anywhere below it).
        out: the output data root (refused if it exists, unless ``overwrite``).
        class_map: ``KEY=K`` entries (see :func:`parse_class_map`).
        test_release: also write ``test_release/<stem>.tif``, the ids json and the COCO ground truth of those
            images (image ids 1..N in stem order), so the set can be predicted and scored as a test split.
        overwrite: replace an existing ``out``.
        progress: show a progress bar over images.
        log: where the one-line-per-image summaries go.
        **options: options of the format's ``find_items`` (its ``OPTIONS``; QuPath: ``reader``, ``mpp``,
            ``region_class``; CoNSeP: ``consep_types``); None values are left out.

    Raises:
        HW3FormatError: a bad input file (``"<path>: <problem>"``).
        ValueError: unknown format or bad class map; OutputPathError: ``out`` exists or cannot be written.
    """
    module = format_module(fmt)
    named_by_data = getattr(module, 'CLASS_NAMES_FROM_EXPORTS', False)
    options = {k: v for k, v in options.items() if v is not None}
    for name in options:
        if name not in getattr(module, 'OPTIONS', ()):
            takers = [f for f, m in CONVERTERS.items() if name in getattr(m, 'OPTIONS', ())]
            raise ValueError(f'--{name.replace("_", "-")} applies to --format {" / ".join(takers) or "none"} only')
    source_names, default_map, default_names = class_scheme(module, options)
    if not named_by_data:
        parse_class_map(class_map, source_names, default_map)  # a bad --class-map fails before any file is read
    src = Path(src)
    if not src.is_dir():
        raise HW3FormatError(src, 'source folder not found')
    with atomic_dir(out, overwrite=overwrite) as tmp:
        items = module.find_items(src, **options)
        if named_by_data:
            source_names = module.source_classes(items, class_map)
        mapping = parse_class_map(class_map, source_names, default_map)
        names = output_class_names(mapping, source_names, default_map, default_names)
        lut = np.zeros(max(len(source_names), max(mapping, default=0)) + 1, np.int64)
        for source, target in mapping.items():
            lut[source] = target
        report = ConversionReport(out=Path(out), class_names=names)
        if named_by_data:
            log('classes: ' + (', '.join(f'{n} -> class{mapping[k]}' if mapping[k] else f'{n} dropped'
                                         for k, n in enumerate(source_names, start=1)) or 'none'))
        iterator = items
        if progress:
            iterator = tqdm(items, desc=f'{fmt} -> HW3', unit='img')
            log = tqdm.write if log is print else log
        stems = []
        for item in iterator:
            images = module.load_item(item, source_names) if named_by_data else [module.load_item(item)]
            for image in images:
                _write_image(image, lut, fmt, tmp, test_release, names, report, log)
                stems.append(image.stem)
        if getattr(module, 'CLASS_NAMES_FROM_DATA', False):  # e.g. label images: as many classes as present
            names = report.class_names = names[:max(report.instances, default=1)]
        sources = list(enumerate(source_names, start=1))
        if getattr(module, 'CLASS_NAMES_FROM_DATA', False):  # label images: only the classes the output has
            sources = [(k, n) for k, n in sources if k <= len(names) or 0 < mapping[k] <= len(names)]
        write_json(tmp / CLASSES_FILE, dict(classes=names, class_map={n: mapping[k] for k, n in sources}))
        if test_release:
            write_test_release_gt(tmp, stems, names)
    return report


def _write_image(image: ConvertedImage, lut: np.ndarray, fmt: str, tmp: Path, test_release: bool,
                 names: Sequence[str], report: ConversionReport, log: Callable[[str], None]) -> None:
    if image.classes.size and image.classes.max() >= len(lut):
        raise HW3FormatError(image.source, f'source class {image.classes.max()} unknown to --format {fmt}')
    classes = lut[image.classes]
    classes[0] = 0
    if (tmp / 'train' / image.stem).exists():
        raise HW3FormatError(image.source, f'a second image named {image.stem!r} (stems must be unique)')
    write_hw3_sample(tmp / 'train' / image.stem, image.rgb, image.labels, classes)
    if test_release:
        write_image_tif(tmp / 'test_release' / f'{image.stem}.tif', image.rgb)
    log(image_summary(image, classes, names))
    report.images += 1
    for k, n in zip(*np.unique(classes[1:][classes[1:] > 0], return_counts=True)):
        report.instances[int(k)] = report.instances.get(int(k), 0) + int(n)
    report.skipped += image.skipped
    report.contested += image.contested
    for name, n in image.ignored.items():
        report.ignored[name] = report.ignored.get(name, 0) + n


def write_test_release_gt(root: Path, stems: Sequence[str], class_names: Sequence[str]) -> None:
    """Write the ids json (ids 1..N in stem order) and the COCO ground truth of ``test_release/``, parsed back
    from the written ``train/<stem>/`` folders by the one HW3 parser."""
    stems = sorted(stems)
    img_ids = {stem: i for i, stem in enumerate(stems, start=1)}
    samples = [dict(parse_sample(root / 'train' / stem), name=stem) for stem in stems]
    write_json(root / TEST_IDS_FILE, [dict(file_name=f'{s["name"]}.tif', id=img_ids[s['name']], height=s['height'],
                                           width=s['width']) for s in samples])
    write_json(root / TEST_GT_FILE, samples_to_coco(samples, img_ids, file_name='{name}.tif',
                                                    classes=class_names))


__all__ = ['CLASS_NAMES', 'coco_categories', 'hw3_to_coco', 'samples_to_coco', 'FORMATS', 'convert_to_hw3',
           'ConversionReport', 'ConvertedImage', 'format_module', 'parse_class_map']
