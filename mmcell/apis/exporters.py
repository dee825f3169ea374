"""mmcell's exporters: label images, cell tables and GeoJSON, for single images and whole slides.

Images (``mmcell segment``):

- :func:`label_image` paints instances into a uint16 (uint32 past 65535 instances) label image, 0 = background,
  overlaps going to the higher score, plus a class map (uint8, contest class id 1..K, 0 = background).
- :func:`cell_table` measures every painted instance: id, class, score, area, centroid, bbox, mean intensity.
- :func:`save_labels` writes ``<stem>_labels.tif``, ``<stem>_classes.tif``, ``<stem>_cells.csv`` and
  ``<stem>_cells.geojson`` (QuPath detections, the Feature builder of the slides) atomically.

Masks may be dense ``(N, H, W)`` arrays/tensors or COCO RLEs (``RLEMasks``); RLEs are painted from their runs,
so a big image with many instances never needs N full-size masks.

Whole slides (``mmcell segment-slide``), streamed so memory does not grow with the slide:

- :class:`CellWriter` writes ``cells.geojson.gz`` (a FeatureCollection QuPath 0.4+ imports: one ``detection``
  Feature per nucleus, Polygon in level-0 pixels, classification name + colour, measurements, UUID) and
  ``cells.csv.gz`` (:data:`SLIDE_TABLE_COLUMNS`) one :class:`Cell` at a time.
- :func:`write_label_pyramid` writes ``labels.ome.tif``: a pyramidal, tiled OME-TIFF whose series 0 holds the
  uint32 instance ids (= the table's ``id``) and series 1 the class map (uint8, class id 1..K), painted tile by tile
  from chunks of cells (:class:`CellChunk`).
- :class:`PreviewCanvas` draws the nuclei, coloured by class, on a slide thumbnail (``preview.png``).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os.path as osp
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

from mmcell.datasets.rle import rle_runs
from mmcell.utils.fileio import atomic_write, atomic_write_text

TABLE_COLUMNS = ('id', 'class_id', 'class', 'score', 'area', 'centroid_x', 'centroid_y', 'bbox_x1', 'bbox_y1',
                 'bbox_x2', 'bbox_y2', 'mean_intensity', 'mean_r', 'mean_g', 'mean_b')


@dataclass
class CellSegmentation:
    """Segmentation of one image: label image, class map and the cell table (one dict per label id)."""
    image_path: str
    labels: np.ndarray
    classes: np.ndarray
    table: List[dict] = field(default_factory=list)
    files: dict = field(default_factory=dict)


def _as_rles(masks: Any, height: int, width: int) -> List[dict]:
    if isinstance(masks, (list, tuple)):
        return list(masks)
    arr = masks.detach().cpu().numpy() if hasattr(masks, 'detach') else np.asarray(masks)
    if arr.ndim != 3 or arr.shape[1:] != (height, width):
        raise ValueError(f'masks of shape {arr.shape} do not fit a {height}x{width} image')
    if len(arr) == 0:
        return []
    binary = arr >= 0.5 if arr.dtype.kind == 'f' else arr.astype(bool, copy=False)
    # one mask at a time: a Fortran-order copy of the whole (H, W, N) stack costs ~6x the encoding itself
    # (3.1 s vs 0.5 s for 500 masks of 1000x1000, benchmark_pathology_metrics.py)
    return [mask_util.encode(np.asfortranarray(m.view(np.uint8)[:, :, None]))[0] for m in binary]


def label_image(masks: Any, scores: Sequence[float], labels: Sequence[int], height: int, width: int,
                dtype: Optional[np.dtype] = None) -> tuple:
    """Paint instances into a label image; the higher score wins where instances overlap.

    Args:
        masks: ``(N, H, W)`` bool/uint8/float array or tensor, or N COCO RLEs.
        scores: ``(N,)`` scores.
        labels: ``(N,)`` class indices 0..K-1 (the model's ``bbox_label``).
        height, width: image size.
        dtype: label dtype (default uint16, uint32 when N > 65535).

    Returns:
        ``(label_img, class_map, order)``: label ids are 1..N by descending score, ``order[i]`` is the input
        index of label ``i + 1``; ``class_map`` holds ``label + 1`` (contest class id).
    """
    rles = _as_rles(masks, height, width)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(rles)
    if not (len(scores) == len(labels) == n):
        raise ValueError(f'{n} masks but {len(scores)} scores and {len(labels)} labels')
    dtype = dtype or (np.uint16 if n <= np.iinfo(np.uint16).max else np.uint32)
    order = np.argsort(-scores, kind='stable')
    prio = np.zeros(height * width, dtype=np.int64)  # column-major (COCO order); higher = better score
    if n:
        starts_l, lens_l, prio_l = [], [], []
        for rank, i in enumerate(order):
            run_starts, run_lens = rle_runs(rles[i])
            starts_l.append(run_starts)
            lens_l.append(run_lens)
            prio_l.append(np.full(len(run_lens), n - rank, dtype=np.int64))
        starts, lens, run_prio = np.concatenate(starts_l), np.concatenate(lens_l), np.concatenate(prio_l)
        if len(lens):
            # expand runs to pixel indices without a Python loop over pixels
            offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
            pix = offsets + np.arange(int(lens.sum()))
            np.maximum.at(prio, pix, np.repeat(run_prio, lens))
    prio = prio.reshape(width, height).T
    ids = np.where(prio > 0, n + 1 - prio, 0).astype(dtype)
    class_of_id = np.zeros(n + 1, dtype=np.uint8)
    class_of_id[1:] = labels[order] + 1
    return ids, class_of_id[ids], order


def cell_table(ids: np.ndarray, order: np.ndarray, scores: Sequence[float], labels: Sequence[int],
               image: Optional[np.ndarray] = None, class_names: Sequence[str] = ()) -> List[dict]:
    """One row per label id with visible pixels (see ``TABLE_COLUMNS``).

    Args:
        ids: label image from :func:`label_image`.
        order: its ``order`` (input index of each label id).
        scores, labels: the inputs given to :func:`label_image`.
        image: ``(H, W, 3)`` RGB (or ``(H, W)`` grey) for the intensity columns (NaN without it).
        class_names: names of classes 0..K-1.

    Area, centroid and bbox are those of the *visible* pixels (after overlap resolution); the bbox is
    ``x1, y1`` inclusive, ``x2, y2`` exclusive.
    """
    from scipy import ndimage

    n = len(order)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    flat = ids.ravel().astype(np.int64)
    area = np.bincount(flat, minlength=n + 1)
    yy, xx = np.indices(ids.shape)
    cy = np.bincount(flat, weights=yy.ravel(), minlength=n + 1) / np.maximum(area, 1)
    cx = np.bincount(flat, weights=xx.ravel(), minlength=n + 1) / np.maximum(area, 1)
    means = np.full((n + 1, 3), np.nan)
    if image is not None:
        img = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
        if img.shape[:2] != ids.shape:
            raise ValueError(f'image {img.shape[:2]} and label image {ids.shape} differ in size')
        for c in range(3):
            means[:, c] = np.bincount(flat, weights=img[..., c].ravel().astype(np.float64),
                                      minlength=n + 1) / np.maximum(area, 1)
    boxes = ndimage.find_objects(ids.astype(np.int64), max_label=n) if n else []
    rows = []
    for lab_id in range(1, n + 1):
        box = boxes[lab_id - 1]
        if box is None:  # fully hidden by higher-scoring instances
            continue
        src = int(order[lab_id - 1])
        cls = int(labels[src])
        rows.append(dict(
            id=lab_id, class_id=cls + 1, **{'class': class_names[cls] if cls < len(class_names) else str(cls + 1)},
            score=round(float(scores[src]), 6), area=int(area[lab_id]), centroid_x=round(float(cx[lab_id]), 3),
            centroid_y=round(float(cy[lab_id]), 3), bbox_x1=box[1].start, bbox_y1=box[0].start,
            bbox_x2=box[1].stop, bbox_y2=box[0].stop, mean_intensity=round(float(np.mean(means[lab_id])), 3),
            mean_r=round(float(means[lab_id, 0]), 3), mean_g=round(float(means[lab_id, 1]), 3),
            mean_b=round(float(means[lab_id, 2]), 3)))
    return rows


def save_labels(seg: CellSegmentation, out_dir: str, dataset_meta: Optional[dict] = None) -> dict:
    """Write ``<stem>_labels.tif`` (label image), ``<stem>_classes.tif`` (class map), ``<stem>_cells.csv`` and
    ``<stem>_cells.geojson`` (the cells as QuPath detections, as ``segment-slide`` writes them)."""
    import tifffile

    stem = osp.splitext(osp.basename(seg.image_path))[0]
    files = dict(labels=osp.join(out_dir, f'{stem}_labels.tif'), classes=osp.join(out_dir, f'{stem}_classes.tif'),
                 table=osp.join(out_dir, f'{stem}_cells.csv'), geojson=osp.join(out_dir, f'{stem}_cells.geojson'))
    atomic_write(files['labels'], lambda p: tifffile.imwrite(p, seg.labels, compression='zlib'))
    atomic_write(files['classes'], lambda p: tifffile.imwrite(p, seg.classes, compression='zlib'))

    def write_csv(p: str) -> None:
        with open(p, 'w', newline='') as fh:
            writer = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS)
            writer.writeheader()
            writer.writerows(seg.table)

    atomic_write(files['table'], write_csv)
    _, colors = class_names_colors(dataset_meta)
    features = []
    for row in seg.table:
        x1, y1, x2, y2 = row['bbox_x1'], row['bbox_y1'], row['bbox_x2'], row['bbox_y2']
        rings = cell_polygon(seg.labels[y1:y2, x1:x2] == row['id'], x1, y1)
        features.append(geojson_feature(row, rings, colors[(row['class_id'] - 1) % len(colors)],
                                        cell_uuid(stem, row['id'])))
    atomic_write_text(files['geojson'], json.dumps(dict(type='FeatureCollection', features=features),
                                                   ensure_ascii=False))
    seg.files = files
    return files


# ------------------------------------------------------------------------------------------------ whole slides
SLIDE_TABLE_COLUMNS = ('id', 'uuid', 'class_id', 'class', 'score', 'centroid_x', 'centroid_y', 'centroid_x_um',
                       'centroid_y_um', 'bbox_x1', 'bbox_y1', 'bbox_x2', 'bbox_y2', 'bbox_x1_um', 'bbox_y1_um',
                       'bbox_x2_um', 'bbox_y2_um', 'area_px', 'area_um2', 'perimeter_um', 'mean_r', 'mean_g',
                       'mean_b', 'mean_hematoxylin', 'mean_eosin')
LABEL_TILE = 512  # tile side of labels.ome.tif (every level)
_UUID_NAMESPACE = uuid.UUID('5d6c1f0e-8a57-4c4e-9d1b-6f1b2b8f3a11')


def class_names_colors(dataset_meta: Optional[dict]) -> Tuple[Tuple[str, ...], List[Tuple[int, int, int]]]:
    """Class names and RGB colours of a model (its ``dataset_meta``), falling back to the HW3 classes."""
    from mmcell.datasets.hw3_dataset import CELL_METAINFO

    meta = dataset_meta or {}
    names = tuple(meta.get('classes') or CELL_METAINFO['classes'])
    palette = list(meta.get('palette') or CELL_METAINFO['palette'])
    if len(palette) < len(names):
        palette += [(128, 128, 128)] * (len(names) - len(palette))
    return names, [tuple(int(v) for v in c) for c in palette[:len(names)]]


@dataclass
class Cell:
    """One nucleus of a slide: its final (visible, non-overlapping) mask as a crop at ``(x1, y1)`` level-0 px.

    ``means`` holds the mean R, G, B and hematoxylin / eosin optical densities of the nucleus pixels.
    """
    id: int
    label: int
    score: float
    x1: int
    y1: int
    mask: np.ndarray
    means: Tuple[float, ...] = (float('nan'),) * 5


def cell_uuid(slide_key: str, cell_id: int) -> str:
    """A UUID for a cell that is the same in every run on the same slide (QuPath object ids)."""
    return str(uuid.uuid5(_UUID_NAMESPACE, f'{slide_key}:{cell_id}'))


def cell_polygon(mask: np.ndarray, x1: int, y1: int) -> List[List[List[float]]]:
    """GeoJSON Polygon rings (outer first, then holes; each closed) of a crop, through pixel centres, level-0 px."""
    import cv2

    contours, hierarchy = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    if contours:
        outer = max((i for i in range(len(contours)) if hierarchy[0][i][3] < 0), key=lambda i: len(contours[i]))
        order = [outer] + [i for i in range(len(contours)) if hierarchy[0][i][3] == outer and len(contours[i]) >= 3]
        for i in order:
            pts = contours[i][:, 0, :].astype(np.float64) + (x1 + 0.5, y1 + 0.5)
            rings.append(pts)
    if not rings or len(rings[0]) < 3:  # a line or a dot: its pixel box
        ys, xs = np.nonzero(mask)
        bx0, by0, bx1, by1 = xs.min() + x1, ys.min() + y1, xs.max() + x1 + 1, ys.max() + y1 + 1
        rings = [np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]], np.float64)] + rings[1:]
    return [[[round(float(x), 2), round(float(y), 2)] for x, y in np.vstack([r, r[:1]])] for r in rings]


def _ring_length(ring: List[List[float]]) -> float:
    pts = np.asarray(ring)
    return float(np.hypot(*np.diff(pts, axis=0).T).sum())


def cell_row(cell: Cell, mpp: float, class_names: Sequence[str], slide_key: str,
             rings: Optional[list] = None) -> dict:
    """The table row of a cell (:data:`SLIDE_TABLE_COLUMNS`); ``rings`` from :func:`cell_polygon` (computed if
    None) give the perimeter."""
    rings = rings if rings is not None else cell_polygon(cell.mask, cell.x1, cell.y1)
    ys, xs = np.nonzero(cell.mask)
    area = int(len(xs))
    cx, cy = float(xs.mean()) + cell.x1 + 0.5, float(ys.mean()) + cell.y1 + 0.5
    bx1, by1, bx2, by2 = int(xs.min()) + cell.x1, int(ys.min()) + cell.y1, int(xs.max()) + cell.x1 + 1, \
        int(ys.max()) + cell.y1 + 1
    r, g, b, hem, eos = (round(float(v), 4) for v in cell.means)
    name = class_names[cell.label] if cell.label < len(class_names) else str(cell.label + 1)
    return {'id': cell.id, 'uuid': cell_uuid(slide_key, cell.id), 'class_id': cell.label + 1, 'class': name,
            'score': round(float(cell.score), 5), 'centroid_x': round(cx, 2), 'centroid_y': round(cy, 2),
            'centroid_x_um': round(cx * mpp, 3), 'centroid_y_um': round(cy * mpp, 3), 'bbox_x1': bx1,
            'bbox_y1': by1, 'bbox_x2': bx2, 'bbox_y2': by2, 'bbox_x1_um': round(bx1 * mpp, 3),
            'bbox_y1_um': round(by1 * mpp, 3), 'bbox_x2_um': round(bx2 * mpp, 3), 'bbox_y2_um': round(by2 * mpp, 3),
            'area_px': area, 'area_um2': round(area * mpp * mpp, 4),
            'perimeter_um': round(_ring_length(rings[0]) * mpp, 4), 'mean_r': r, 'mean_g': g, 'mean_b': b,
            'mean_hematoxylin': hem, 'mean_eosin': eos}


# QuPath measurement name <- table column (those a row has and that are finite)
GEOJSON_MEASUREMENTS = (('Label', 'id'), ('Area µm^2', 'area_um2'), ('Area px', 'area'),
                        ('Perimeter µm', 'perimeter_um'), ('Score', 'score'),
                        ('Hematoxylin OD mean', 'mean_hematoxylin'), ('Eosin OD mean', 'mean_eosin'),
                        ('Red mean', 'mean_r'), ('Green mean', 'mean_g'), ('Blue mean', 'mean_b'))


def geojson_feature(row: dict, rings: list, color: Sequence[int], object_id: Optional[str] = None) -> dict:
    """A QuPath detection Feature for a table row (slide or image table) and its polygon rings."""
    measurements = {name: row[key] for name, key in GEOJSON_MEASUREMENTS
                    if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])}
    return {'type': 'Feature', 'id': object_id or row['uuid'], 'geometry': {'type': 'Polygon', 'coordinates': rings},
            'properties': {'objectType': 'detection',
                           'classification': {'name': row['class'], 'color': [int(c) for c in color]},
                           'measurements': measurements}}


def open_stream(path: str):
    """A binary file for writing; gzip (reproducible: no name, mtime 0) when ``path`` ends with ``.gz``."""
    raw = open(path, 'wb')
    if not str(path).endswith('.gz'):
        return raw
    return _ClosingGzip(raw)


class _ClosingGzip(gzip.GzipFile):
    def __init__(self, raw) -> None:
        super().__init__(filename='', mode='wb', fileobj=raw, mtime=0, compresslevel=6)
        self._raw = raw

    def close(self) -> None:
        super().close()
        self._raw.close()


class CellWriter:
    """Stream cells into ``cells.geojson.gz`` and ``cells.csv.gz`` (one :meth:`add` per cell, ids in order).

    Args:
        geojson_path, table_path: the files (gzip when they end with ``.gz``); inside a folder made with
            :func:`mmcell.utils.fileio.atomic_dir`, so they appear only when complete.
        mpp: microns per level-0 pixel.
        class_names, colors: from :func:`class_names_colors`.
        slide_key: makes the cell UUIDs (``cell_uuid``) specific to the slide.
    """

    def __init__(self, geojson_path: str, table_path: str, mpp: float, class_names: Sequence[str],
                 colors: Sequence[Sequence[int]], slide_key: str) -> None:
        self.mpp, self.class_names, self.colors, self.slide_key = mpp, tuple(class_names), list(colors), slide_key
        self._geo = open_stream(geojson_path)
        self._geo.write(b'{"type": "FeatureCollection", "features": [\n')
        self._table_fh = open_stream(table_path)
        self._table_text = io.TextIOWrapper(self._table_fh, encoding='utf-8', newline='')
        self._table = csv.DictWriter(self._table_text, fieldnames=SLIDE_TABLE_COLUMNS)
        self._table.writeheader()
        self.count = 0

    def add(self, cell: Cell) -> dict:
        """Write one cell to both files; returns its table row."""
        rings = cell_polygon(cell.mask, cell.x1, cell.y1)
        row = cell_row(cell, self.mpp, self.class_names, self.slide_key, rings)
        color = self.colors[cell.label] if cell.label < len(self.colors) else (128, 128, 128)
        text = json.dumps(geojson_feature(row, rings, color), ensure_ascii=False, allow_nan=False)
        self._geo.write(((',\n' if self.count else '') + text).encode('utf-8'))
        self._table.writerow(row)
        self.count += 1
        return row

    def close(self) -> None:
        self._geo.write(b'\n]}\n')
        self._geo.close()
        self._table_text.flush()
        self._table_text.close()

    def __enter__(self) -> CellWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class CellChunk:
    """Cells whose masks lie within level-0 rows ``[ymin, ymax)``; ``load()`` returns ``dict(ids, labels, boxes,
    packed, offsets)``: uint32 ids, class indices 0..K-1, ``(n, 4)`` int crop boxes ``x1, y1, x2, y2`` (exclusive),
    ``np.packbits`` of the crops (row-major) and the start of each crop in ``packed`` (``n + 1`` entries)."""
    ymin: int
    ymax: int
    load: Callable[[], dict]


def pack_cells(cells: Sequence[Cell]) -> dict:
    """:class:`Cell` objects as the arrays of :class:`CellChunk`."""
    packed = [np.packbits(c.mask.astype(bool).ravel()) for c in cells]
    offsets = np.zeros(len(cells) + 1, np.int64)
    offsets[1:] = np.cumsum([len(p) for p in packed]) if packed else []
    return dict(ids=np.array([c.id for c in cells], np.uint32), labels=np.array([c.label for c in cells], np.int16),
                boxes=np.array([[c.x1, c.y1, c.x1 + c.mask.shape[1], c.y1 + c.mask.shape[0]] for c in cells],
                               np.int64).reshape(-1, 4),
                packed=np.concatenate(packed) if packed else np.zeros(0, np.uint8), offsets=offsets)


def _label_tiles(chunks: Sequence[CellChunk], step: int, width: int, height: int, tile: int, field_name: str,
                 dtype: np.dtype) -> Iterator[np.ndarray]:
    """Tiles (row-major) of level ``step`` (= ``labels[::step, ::step]`` of level 0) painted from the chunks."""
    cache: dict = {}
    for ty in range(0, height, tile):
        band0, band1 = ty * step, (ty + tile) * step  # level-0 rows of this tile row
        for key in [k for k, c in cache.items() if chunks[k].ymax <= band0]:
            del cache[key]
        for k, chunk in enumerate(chunks):
            if k not in cache and chunk.ymin < band1 and chunk.ymax > band0:
                cache[k] = chunk.load()
        parts = [cache[k] for k in sorted(cache)]
        boxes = np.concatenate([p['boxes'] for p in parts]) if parts else np.zeros((0, 4), np.int64)
        in_band = np.flatnonzero((boxes[:, 1] < band1) & (boxes[:, 3] > band0)) if len(boxes) else []
        refs = [(p, i) for p in parts for i in range(len(p['boxes']))]
        for tx in range(0, width, tile):
            out = np.zeros((tile, tile), dtype)
            x0, x1 = tx * step, (tx + tile) * step
            for j in in_band:
                bx1, by1, bx2, by2 = (int(v) for v in boxes[j])
                if bx2 <= x0 or bx1 >= x1:
                    continue
                part, i = refs[j]
                value = part['ids'][i] if field_name == 'ids' else part['labels'][i] + 1
                h, w = by2 - by1, bx2 - bx1
                mask = np.unpackbits(part['packed'][part['offsets'][i]:part['offsets'][i + 1]],
                                     count=h * w).reshape(h, w)
                r0, c0 = (-by1) % step, (-bx1) % step
                sub = mask[r0::step, c0::step]
                if not sub.size:
                    continue
                oy, ox = (by1 + r0) // step - ty, (bx1 + c0) // step - tx
                sy0, sx0 = max(0, -oy), max(0, -ox)
                sy1, sx1 = min(sub.shape[0], tile - oy), min(sub.shape[1], tile - ox)
                if sy1 <= sy0 or sx1 <= sx0:
                    continue
                region = out[oy + sy0:oy + sy1, ox + sx0:ox + sx1]
                region[sub[sy0:sy1, sx0:sx1] > 0] = value
            yield out


def label_levels(width: int, height: int, tile: int = LABEL_TILE) -> List[int]:
    """Downsample steps of the label pyramid: 1, 2, 4, ... until a level fits in one tile."""
    steps = [1]
    while max(math.ceil(width / steps[-1]), math.ceil(height / steps[-1])) > tile:
        steps.append(steps[-1] * 2)
    return steps


def write_label_pyramid(path: str, width: int, height: int, chunks: Sequence[CellChunk],
                        mpp: Optional[float] = None, tile: int = LABEL_TILE) -> None:
    """Write the label OME-TIFF (see the module docstring) of a ``width`` x ``height`` level-0 slide, tile by tile.

    Memory: the cells of the chunks that meet one row of tiles at a time.
    """
    import tifffile

    steps = label_levels(width, height, tile)
    pixels = dict(PhysicalSizeX=mpp, PhysicalSizeXUnit='µm', PhysicalSizeY=mpp, PhysicalSizeYUnit='µm') if mpp \
        else {}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        for name, field_name, dtype in (('labels', 'ids', np.uint32), ('classes', 'labels', np.uint8)):
            for li, step in enumerate(steps):
                w, h = math.ceil(width / step), math.ceil(height / step)
                kwargs: dict = dict(shape=(h, w), dtype=dtype, tile=(tile, tile), compression='zlib',
                                    photometric='minisblack')
                if li == 0:
                    kwargs.update(subifds=len(steps) - 1, metadata=dict(axes='YX', Name=name, **pixels))
                else:
                    kwargs.update(subfiletype=1)
                tif.write(_label_tiles(chunks, step, w, h, tile, field_name, dtype), **kwargs)


class PreviewCanvas:
    """A thumbnail of the slide on which nuclei are drawn as dots coloured by class (``preview.png``).

    Args:
        thumbnail: RGB thumbnail; ``downsample`` level-0 px per thumbnail px.
        colors: RGB colour per class index.
        tissue: optional tissue mask (same size as the thumbnail), outlined in dark grey.
        region: optional level-0 ``(x, y, w, h)`` worked on, outlined in black.
    """

    def __init__(self, thumbnail: np.ndarray, downsample: float, colors: Sequence[Sequence[int]],
                 tissue: Optional[np.ndarray] = None, region: Optional[Sequence[int]] = None) -> None:
        import cv2

        self.image = np.ascontiguousarray(thumbnail[..., ::-1]).copy()  # BGR for OpenCV
        self.ds, self.colors = float(downsample), [tuple(int(v) for v in c[::-1]) for c in colors]
        if tissue is not None and tissue.any():
            contours, _ = cv2.findContours(tissue.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(self.image, contours, -1, (90, 90, 90), 1)
        if region is not None:
            x, y, w, h = (v / self.ds for v in region)
            cv2.rectangle(self.image, (int(x), int(y)), (int(math.ceil(x + w)) - 1, int(math.ceil(y + h)) - 1),
                          (0, 0, 0), 1)

    def add(self, row: dict, label: int) -> None:
        import cv2

        radius = max(1, int(round(math.sqrt(row['area_px'] / math.pi) / self.ds)))
        centre = (int(row['centroid_x'] / self.ds), int(row['centroid_y'] / self.ds))
        cv2.circle(self.image, centre, radius, self.colors[label % len(self.colors)], -1)

    def png(self) -> bytes:
        import cv2

        ok, buf = cv2.imencode('.png', self.image)
        if not ok:
            raise ValueError('preview: PNG encoding failed')
        return buf.tobytes()
