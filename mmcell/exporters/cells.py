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
import uuid
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmcell.datasets.hw3_dataset import CELL_METAINFO
from mmcell.structures.cells import Cell, cell_polygon

# ------------------------------------------------------------------------------------------------ whole slides
SLIDE_TABLE_COLUMNS = ('id', 'uuid', 'class_id', 'class', 'score', 'centroid_x', 'centroid_y', 'centroid_x_um',
                       'centroid_y_um', 'bbox_x1', 'bbox_y1', 'bbox_x2', 'bbox_y2', 'bbox_x1_um', 'bbox_y1_um',
                       'bbox_x2_um', 'bbox_y2_um', 'area_px', 'area_um2', 'perimeter_um', 'mean_r', 'mean_g',
                       'mean_b', 'mean_hematoxylin', 'mean_eosin')
_UUID_NAMESPACE = uuid.UUID('5d6c1f0e-8a57-4c4e-9d1b-6f1b2b8f3a11')


def class_names_colors(dataset_meta: Optional[dict]) -> Tuple[Tuple[str, ...], List[Tuple[int, int, int]]]:
    """Class names and RGB colours of a model (its ``dataset_meta``), falling back to the HW3 classes."""

    meta = dataset_meta or {}
    names = tuple(meta.get('classes') or CELL_METAINFO['classes'])
    palette = list(meta.get('palette') or CELL_METAINFO['palette'])
    if len(palette) < len(names):
        palette += [(128, 128, 128)] * (len(names) - len(palette))
    return names, [tuple(int(v) for v in c) for c in palette[:len(names)]]


def cell_uuid(slide_key: str, cell_id: int) -> str:
    """A UUID for a cell that is the same in every run on the same slide (QuPath object ids)."""
    return str(uuid.uuid5(_UUID_NAMESPACE, f'{slide_key}:{cell_id}'))


def contour_length(mask: np.ndarray) -> float:
    """Perimeter (px) of a mask's largest part, along its pixel-centre contour (a disc of radius r gives about
    2 pi r; the pixel-edge outline of :func:`cell_polygon` is a staircase about 4 / pi longer)."""
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    return max((cv2.arcLength(c, True) for c in contours), default=0.0)


def cell_row(cell: Cell, mpp: float, class_names: Sequence[str], slide_key: str) -> dict:
    """The table row of a cell (:data:`SLIDE_TABLE_COLUMNS`)."""
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
            'perimeter_um': round(contour_length(cell.mask) * mpp, 4), 'mean_r': r, 'mean_g': g, 'mean_b': b,
            'mean_hematoxylin': hem, 'mean_eosin': eos}


# QuPath measurement name <- table column (those a row has and that are finite)
GEOJSON_MEASUREMENTS = (('Label', 'id'), ('Area µm^2', 'area_um2'), ('Area px', 'area'),
                        ('Perimeter µm', 'perimeter_um'), ('Score', 'score'),
                        ('Hematoxylin OD mean', 'mean_hematoxylin'), ('Eosin OD mean', 'mean_eosin'),
                        ('Red mean', 'mean_r'), ('Green mean', 'mean_g'), ('Blue mean', 'mean_b'))


def geojson_feature(row: dict, geometry: dict, color: Sequence[int], object_id: Optional[str] = None) -> dict:
    """A QuPath detection Feature for a table row (slide or image table) and its outline (:func:`cell_polygon`)."""
    measurements = {name: row[key] for name, key in GEOJSON_MEASUREMENTS
                    if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])}
    return {'type': 'Feature', 'id': object_id or row['uuid'], 'geometry': geometry,
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
        geometry = cell_polygon(cell.mask, cell.x1, cell.y1)
        row = cell_row(cell, self.mpp, self.class_names, self.slide_key)
        color = self.colors[cell.label] if cell.label < len(self.colors) else (128, 128, 128)
        text = json.dumps(geojson_feature(row, geometry, color), ensure_ascii=False, allow_nan=False)
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


