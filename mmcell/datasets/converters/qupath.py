"""QuPath GeoJSON exports (*File > Export objects as GeoJSON*) on their slides: a pathology group's own annotations.

Input: slides (any format :class:`~mmcell.datasets.slide.SlideReader` opens: SVS, OME-TIFF, tiled TIFF, and through
OpenSlide NDPI, MRXS, SCN, Philips TIFF, VMS/VMU, BIF; PNG/JPEG/TIFF images) and their exports
``<stem>.geojson``, ``<stem>.json`` or ``<stem>.geojson.gz`` anywhere below SRC, matched by stem (a FeatureCollection
or a bare list of features, as QuPath writes them). Coordinates are level-0 pixels.

Objects (``properties.objectType``; older exports without it count as annotations):

- **nuclei**: ``annotation`` and ``detection`` objects with a Polygon or MultiPolygon geometry (holes and parts kept),
  and ``cell`` objects through their ``nucleusGeometry`` (their ``geometry`` when they have none); ``tile``,
  ``tma_core`` and ``root`` objects are left out. The class is ``properties.classification.name`` (older
  exports: ``classification`` as a string, or ``name``); unclassified objects are ``Unclassified``.
- **regions**: annotations whose class starts with ``Region`` (QuPath's built-in region class; ``--region-class``
  to change) are the fully annotated areas. Each becomes one training image ``<stem>_region<k>`` (k = its rank
  among the file's regions), its bounding box cut from the slide at level 0 (or resampled to ``--mpp``), holding
  every nucleus whose pixels fall inside the region, cut at the region's edge; pixels of the box outside a
  non-rectangular region are painted white (nothing there is annotated). Without any region the whole image is one
  region (``<stem>``) when it is at most :data:`MAX_WHOLE_SIDE` px a side; otherwise the run stops asking for
  regions.
- **ignored**: annotations whose class starts with ``Ignore`` (QuPath's ``Ignore*``) are skipped and counted, and so
  are objects whose ``geometry`` is ``null`` (valid GeoJSON: an object without a shape); a feature with no
  ``geometry`` member at all is not GeoJSON and stops the run.

Classes (source class -> ``class<K>.tif``): ``--class-map Name=K`` (every name in the exports must be listed; K=0
drops the class), else the HW3 classes when every name is a MoNuSAC class (Epithelial 1, Lymphocyte 2, Macrophage 3,
Neutrophil 4, case-insensitive), else one class per distinct name in order of first appearance (files in stem order,
features in file order). The mapping is printed and written to ``OUT/classes.json``.

Rasterisation (pixel centre inside the polygon, holes subtracted, parts united) is the rule of :mod:`.imagescope`;
overlaps go to the smaller instance (:func:`mmcell.structures.label_image.paint_instances`). Every bad input stops the
run with one line naming the file and the feature id (``id``, else ``properties.id``, else ``#<index>`` in the
file): unparsable GeoJSON, a feature without geometry or with another geometry type, a polygon ring with fewer than
3 vertices or a coordinate that is not a finite number, a vertex more than :data:`MAX_OUTSIDE_PX` outside the slide,
a name not in ``--class-map``, a slide no reader opens, a slide without export or an export without slide.
"""
from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmcell.datasets.converters.common import ConvertedImage
from mmcell.datasets.converters.imagescope import polygon_pixels
from mmcell.datasets.hw3_format import HW3FormatError
from mmcell.datasets.metainfo import CLASSES as HW3_CLASSES
from mmcell.datasets.slide.reader import SlideError, SlideReader, slide_stem
from mmcell.structures.label_image import paint_instances

#: a slide with no region is one training image only up to this side (px); larger ones need Region annotations
MAX_WHOLE_SIDE = 8192
#: a vertex farther than this outside the slide (level-0 px) is an error: the export belongs to another slide
MAX_OUTSIDE_PX = 1.0
GEOJSON_SUFFIXES = ('.geojson.gz', '.geojson', '.json')
#: slide suffixes looked for below SRC (OpenSlide's formats included)
SLIDE_SUFFIXES = ('.svs', '.tif', '.tiff', '.ndpi', '.mrxs', '.scn', '.vms', '.vmu', '.bif', '.svslide', '.png',
                  '.jpg', '.jpeg')
MONUSAC_NAMES = ('Epithelial', 'Lymphocyte', 'Macrophage', 'Neutrophil')
UNCLASSIFIED = 'Unclassified'
#: source classes are named by the exports, resolved by :func:`source_classes` (see the module docstring)
CLASS_NAMES: Tuple[str, ...] = ()
CLASS_NAMES_FROM_EXPORTS = True
#: the ``convert_to_hw3`` options this format takes
OPTIONS = ('reader', 'mpp', 'region_class')


@dataclass
class QuPathObject:
    """One object of an export: its kind (``nucleus``, ``region``, ``ignore``, ``empty``: a null geometry), class
    name, id and polygons (each a list of ``(n, 2)`` float rings, exterior first; none when ``empty``)."""
    kind: str
    name: str
    fid: str
    polygons: List[List[np.ndarray]]


@dataclass
class QuPathItem:
    stem: str
    slide: Path
    geojson: Path
    reader: str = 'auto'
    mpp: Optional[float] = None
    region_class: str = 'Region'
    objects: List[QuPathObject] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ reading exports
def _geojson_stem(path: Path) -> Optional[str]:
    name = path.name
    for suffix in GEOJSON_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return None


def load_features(path: Path) -> List[dict]:
    """The features of a QuPath export (FeatureCollection, bare list, or one Feature; ``.gz`` or plain)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.lower().endswith('.gz') else path.read_bytes()
        data = json.loads(raw.decode('utf-8'))
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise HW3FormatError(path, f'unreadable GeoJSON ({err})') from None
    except json.JSONDecodeError as err:
        raise HW3FormatError(path, f'not valid GeoJSON ({err.msg}: line {err.lineno}, column {err.colno})') from None
    if isinstance(data, dict) and data.get('type') == 'FeatureCollection':
        data = data.get('features')
    elif isinstance(data, dict) and data.get('type') == 'Feature':
        data = [data]
    if not isinstance(data, list) or not all(isinstance(f, dict) for f in data):
        raise HW3FormatError(path, 'not a QuPath GeoJSON export (expected a FeatureCollection or a list of features)')
    return data


def feature_id(feature: dict, index: int) -> str:
    props = feature.get('properties') if isinstance(feature.get('properties'), dict) else {}
    return str(feature.get('id') or props.get('id') or f'#{index}')


def class_name(props: dict) -> str:
    """``classification.name``, an older export's ``classification`` string or ``name``; else ``Unclassified``."""
    cls = props.get('classification')
    if isinstance(cls, dict) and cls.get('name'):
        return str(cls['name']).strip()
    if isinstance(cls, str) and cls.strip():
        return cls.strip()
    if props.get('name') and props.get('objectType', 'annotation') != 'annotation':
        return str(props['name']).strip()
    return UNCLASSIFIED


def _rings(path: Path, fid: str, coords, what: str) -> List[np.ndarray]:
    if not isinstance(coords, list) or not coords:
        raise HW3FormatError(path, f'feature {fid}: {what} has no coordinates')
    rings = []
    for ring in coords:
        try:
            arr = np.array(ring, dtype=np.float64)
        except (TypeError, ValueError):
            raise HW3FormatError(path, f'feature {fid}: {what} coordinates are not numbers') from None
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise HW3FormatError(path, f'feature {fid}: {what} ring is not a list of [x, y] points')
        arr = arr[:, :2]
        if not np.isfinite(arr).all():
            raise HW3FormatError(path, f'feature {fid}: {what} has a coordinate that is not a finite number (NaN)')
        if len(arr) > 1 and np.array_equal(arr[0], arr[-1]):
            arr = arr[:-1]
        if len(np.unique(arr, axis=0)) < 3:
            raise HW3FormatError(path, f'feature {fid}: {what} ring has {len(arr)} distinct vertices (at least 3 '
                                 'needed)')
        rings.append(arr)
    return rings


def geometry_polygons(path: Path, fid: str, geometry, what: str = 'geometry') -> List[List[np.ndarray]]:
    """The polygons (rings, exterior first) of a Polygon / MultiPolygon geometry; one-line errors otherwise."""
    if not isinstance(geometry, dict) or not geometry.get('type'):
        raise HW3FormatError(path, f'feature {fid}: no {what}')
    kind = geometry['type']
    if kind == 'Polygon':
        return [_rings(path, fid, geometry.get('coordinates'), what)]
    if kind == 'MultiPolygon':
        parts = geometry.get('coordinates')
        if not isinstance(parts, list) or not parts:
            raise HW3FormatError(path, f'feature {fid}: {what} has no coordinates')
        return [_rings(path, fid, part, what) for part in parts]
    raise HW3FormatError(path, f'feature {fid}: {what} is a {kind}, expected a Polygon or MultiPolygon (a nucleus or '
                         'region outline)')


def read_export(path: Path, region_class: str = 'Region') -> List[QuPathObject]:
    """The nuclei, regions and ignored areas of an export (see the module docstring)."""
    objects = []
    for index, feature in enumerate(load_features(path)):
        fid = feature_id(feature, index)
        props = feature.get('properties') if isinstance(feature.get('properties'), dict) else {}
        kind = str(props.get('objectType', 'annotation'))
        name = class_name(props)
        if kind in ('tile', 'tma_core', 'root'):  # tiles and TMA cores are not annotated nuclei or regions
            continue
        if kind == 'cell' and feature.get('nucleusGeometry') is not None:
            polygons = geometry_polygons(path, fid, feature['nucleusGeometry'], 'nucleusGeometry')
        elif 'geometry' in feature and feature['geometry'] is None:  # valid GeoJSON: skipped and counted
            objects.append(QuPathObject('empty', name, fid, []))
            continue
        else:
            polygons = geometry_polygons(path, fid, feature.get('geometry'))
        role = 'nucleus'
        if kind == 'annotation' and name.lower().startswith(region_class.lower()):
            role = 'region'
        elif kind == 'annotation' and name.lower().startswith('ignore'):
            role = 'ignore'
        elif kind not in ('annotation', 'detection', 'cell'):
            raise HW3FormatError(path, f'feature {fid}: unknown objectType {kind!r}')
        objects.append(QuPathObject(role, name, fid, polygons))
    return objects


# ------------------------------------------------------------------------------------------------ items and classes
def find_items(src: Path, reader: str = 'auto', mpp: Optional[float] = None,
               region_class: str = 'Region') -> List[QuPathItem]:
    """Pair slides and exports by stem below ``src`` (one-line errors for a slide without export and the reverse)."""
    slides: Dict[str, Path] = {}
    exports: Dict[str, Path] = {}
    for path in sorted(Path(src).rglob('*')):
        if not path.is_file() or path.name.startswith('.'):
            continue
        stem = _geojson_stem(path)
        found, what = (exports, 'GeoJSON export') if stem is not None else (slides, 'slide')
        if stem is None:
            if not path.name.lower().endswith(SLIDE_SUFFIXES):
                continue
            stem = slide_stem(path.name)
        if stem in found:
            raise HW3FormatError(path, f'{what} stem {stem!r} also used by {found[stem]} (slides and exports are '
                                 'matched by stem: stems must be unique)')
        found[stem] = path
    for stem, export in exports.items():
        if stem not in slides:
            raise HW3FormatError(export, f'no slide with stem {stem!r} below {src}')
    for stem, slide in slides.items():
        if stem not in exports:
            raise HW3FormatError(slide, f'no QuPath GeoJSON export ({stem}.geojson, .json or .geojson.gz) below {src}')
    if not slides:
        raise HW3FormatError(src, 'no slides with QuPath GeoJSON exports found')
    items = []
    for stem in sorted(slides):
        item = QuPathItem(stem, slides[stem], exports[stem], reader=reader, mpp=mpp, region_class=region_class)
        item.objects = read_export(item.geojson, region_class)
        items.append(item)
    return items


def source_classes(items: Sequence[QuPathItem], class_map: Optional[Sequence[str]]) -> Tuple[str, ...]:
    """The source class names (source id k = ``names[k - 1]``) by the rule of the module docstring."""
    seen: List[str] = []
    first: Dict[str, Tuple[Path, str]] = {}
    for item in items:
        for obj in item.objects:
            if obj.kind == 'nucleus' and obj.name not in first:
                first[obj.name] = (item.geojson, obj.fid)
                seen.append(obj.name)
    if class_map:
        listed = [entry.partition('=')[0].strip() for entry in class_map]
        for name in seen:
            if name not in listed:
                path, fid = first[name]
                raise HW3FormatError(path, f'feature {fid}: class {name!r} is not in --class-map '
                                     f'({", ".join(listed)}); add {name}=K (K=0 drops it)')
        return tuple(listed)
    lower = {n.lower() for n in seen}
    if seen and lower <= {n.lower() for n in MONUSAC_NAMES}:
        return tuple(HW3_CLASSES)
    return tuple(seen)


# ------------------------------------------------------------------------------------------------ rasterising
def polygons_pixels(polygons: Sequence[Sequence[np.ndarray]], height: int, width: int) -> np.ndarray:
    """Flat indices of the pixels whose centre lies inside a polygon and outside its holes (parts united)."""
    inside = np.zeros(0, np.int64)
    for rings in polygons:
        part = polygon_pixels(rings[0], height, width)
        for hole in rings[1:]:
            part = np.setdiff1d(part, polygon_pixels(hole, height, width), assume_unique=True)
        inside = np.union1d(inside, part)
    return inside


def _check_inside(item: QuPathItem, obj: QuPathObject, width: int, height: int) -> None:
    pts = np.concatenate([r for rings in obj.polygons for r in rings])
    over = np.maximum.reduce([-pts[:, 0], -pts[:, 1], pts[:, 0] - width, pts[:, 1] - height])
    worst = int(np.argmax(over))
    if over[worst] > MAX_OUTSIDE_PX:
        x, y = pts[worst]
        raise HW3FormatError(item.geojson, f'feature {obj.fid}: vertex ({x:g}, {y:g}) lies outside the slide '
                             f'{item.slide.name} ({width} x {height} px; coordinates are level-0 pixels)')


def load_item(item: QuPathItem, class_names: Sequence[str] = ()) -> List[ConvertedImage]:
    """One :class:`ConvertedImage` per region of the slide (see the module docstring)."""
    try:
        reader = SlideReader(str(item.slide), reader=item.reader)
    except SlideError as err:
        raise HW3FormatError(item.slide, str(err).split(': ', 1)[-1]) from None
    try:
        width, height = reader.dimensions
        for obj in item.objects:
            if obj.polygons:
                _check_inside(item, obj, width, height)
        scale = 1.0
        if item.mpp is not None:
            if reader.mpp is None:
                raise HW3FormatError(item.slide, f'--mpp {item.mpp:g}: the slide has no microns per pixel in its '
                                     'metadata to resample from')
            scale = reader.mpp / item.mpp
        regions = [o for o in item.objects if o.kind == 'region']
        boxes: List[Tuple[str, Optional[QuPathObject], Tuple[int, int, int, int]]] = []
        if not regions:
            if max(width, height) > MAX_WHOLE_SIDE:
                raise HW3FormatError(item.geojson, f'no {item.region_class}* annotation, and the slide '
                                     f'{item.slide.name} is {width} x {height} px (more than {MAX_WHOLE_SIDE} a side): '
                                     f'draw {item.region_class} annotations around the fully annotated areas')
            boxes.append((item.stem, None, (0, 0, width, height)))
        for k, region in enumerate(regions, start=1):
            pts = np.concatenate([r for rings in region.polygons for r in rings])
            x0, y0 = (max(int(math.floor(v)), 0) for v in pts.min(axis=0))
            x1, y1 = min(int(math.ceil(pts[:, 0].max())), width), min(int(math.ceil(pts[:, 1].max())), height)
            boxes.append((f'{item.stem}_region{k}', region, (x0, y0, x1 - x0, y1 - y0)))
        nuclei = [o for o in item.objects if o.kind == 'nucleus']
        counts = {f'Ignore* ({item.geojson.name})': sum(o.kind == 'ignore' for o in item.objects),
                  f'null geometry ({item.geojson.name})': sum(o.kind == 'empty' for o in item.objects)}
        images = [_cut(item, reader, stem, region, box, nuclei, class_names, scale) for stem, region, box in boxes]
        if images:
            images[0].ignored = {name: n for name, n in counts.items() if n}
        return images
    finally:
        reader.close()


def _cut(item: QuPathItem, reader: SlideReader, stem: str, region: Optional[QuPathObject],
         box: Tuple[int, int, int, int], nuclei: Sequence[QuPathObject], class_names: Sequence[str],
         scale: float) -> ConvertedImage:
    x, y, w, h = box
    rgb = reader.read(0, x, y, w, h)
    if scale != 1.0:
        w, h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

    def local(polygons):
        return [[(r - (x, y)) * scale for r in rings] for rings in polygons]

    inside = None
    if region is not None:
        inside = polygons_pixels(local(region.polygons), h, w)
        if len(inside) < w * h:
            outside = np.ones(h * w, bool)
            outside[inside] = False
            rgb = rgb.copy()
            rgb.reshape(-1, 3)[outside] = 255
    index = {name: k for k, name in enumerate(class_names, start=1)}
    pixels, sources, skipped = [], [], 0
    for obj in nuclei:
        pts = np.concatenate([r for rings in obj.polygons for r in rings])
        if pts[:, 0].max() <= x or pts[:, 1].max() <= y or pts[:, 0].min() >= x + box[2] or \
                pts[:, 1].min() >= y + box[3]:
            continue  # another region's nucleus
        px = polygons_pixels(local(obj.polygons), h, w)
        if not len(px):  # no pixel centre inside the polygon (here: it may have some in a neighbouring region)
            skipped += 1
            continue
        if inside is not None:
            px = np.intersect1d(px, inside, assume_unique=True)
            if not len(px):
                continue  # in the region's box, outside the region
        pixels.append(px)
        sources.append(index.get(obj.name, 0))
    labels, kept, contested = paint_instances(pixels, h, w)
    classes = np.zeros(len(kept) + 1, np.int64)
    classes[1:] = np.asarray(sources, np.int64)[kept] if len(kept) else []
    return ConvertedImage(stem=stem, source=item.geojson, rgb=rgb, labels=labels, classes=classes,
                          skipped=skipped + len(pixels) - len(kept), contested=contested)
