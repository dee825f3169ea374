"""Whole-slide cells for QuPath and spreadsheets, streamed so memory does not grow with the slide.

:class:`CellWriter` writes ``cells.geojson.gz`` (a FeatureCollection QuPath 0.4+ imports: one ``detection`` Feature
per nucleus, its pixel-edge outline in level-0 pixels, classification name + colour, QuPath's nucleus measurements
(:mod:`mmcell.exporters.measurements`), UUID; a ``metadata`` block with config and checkpoint) and ``cells.csv.gz``
(:data:`SLIDE_TABLE_COLUMNS`), one :class:`mmcell.structures.cells.Cell` at a time. :func:`geojson_feature` is the
one Feature builder (single images use it too, :mod:`mmcell.exporters.image`).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os.path as osp
import uuid
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from mmcell.datasets.hw3_dataset import CELL_METAINFO
from mmcell.datasets.metainfo import class_palette
from mmcell.exporters.measurements import measurement_dict, nucleus_measurements
from mmcell.structures.cells import Cell, cell_polygon
from mmcell.structures.rle import crop_rle
from mmcell.version import __version__

# ------------------------------------------------------------------------------------------------ whole slides
SLIDE_TABLE_COLUMNS = ('id', 'uuid', 'class_id', 'class', 'score', 'class_margin', 'second_class', 'centroid_x',
                       'centroid_y', 'centroid_x_um', 'centroid_y_um', 'bbox_x1', 'bbox_y1', 'bbox_x2', 'bbox_y2',
                       'bbox_x1_um', 'bbox_y1_um', 'bbox_x2_um', 'bbox_y2_um', 'area_px', 'area_um2', 'perimeter_um',
                       'circularity', 'solidity', 'max_caliper_um', 'min_caliper_um', 'eccentricity', 'mean_r',
                       'mean_g', 'mean_b', 'mean_hematoxylin', 'std_hematoxylin', 'max_hematoxylin', 'mean_eosin')
#: ``--review-below``'s default class-margin rule: a cell whose class score leads the next class by less than this
#: goes to review too (e.g. 0.50 vs 0.35)
REVIEW_MARGIN = 0.2
_UUID_NAMESPACE = uuid.UUID('5d6c1f0e-8a57-4c4e-9d1b-6f1b2b8f3a11')


def class_names_colors(dataset_meta: Optional[dict]) -> Tuple[Tuple[str, ...], List[Tuple[int, int, int]]]:
    """Class names of a model (its ``dataset_meta['classes']``, the HW3 classes when it has none) and the colour of
    each **name** (:func:`mmcell.datasets.metainfo.class_color`: a name keeps its QuPath colour whatever the model
    and its class order; the palette a data set class carries by index is not used)."""
    names = tuple(str(n) for n in ((dataset_meta or {}).get('classes') or CELL_METAINFO['classes']))
    return names, class_palette(names)


def class_name(class_names: Sequence[str], label: int) -> str:
    """The name of model label ``label`` (0-based); its 1-based number when the model has no name for it."""
    return str(class_names[label]) if 0 <= label < len(class_names) else str(label + 1)


def cell_uuid(slide_key: str, cell_id: int) -> str:
    """A UUID for a cell that is the same in every run on the same slide (QuPath object ids)."""
    return str(uuid.uuid5(_UUID_NAMESPACE, f'{slide_key}:{cell_id}'))


def _rounded(measures: dict, keys: Sequence[str], digits: int = 4) -> dict:
    return {k: round(float(measures[k]), digits) for k in keys}


def cell_row(cell: Cell, mpp: float, class_names: Sequence[str], slide_key: str,
             outline: Optional[dict] = None) -> dict:
    """The table row of a cell (:data:`SLIDE_TABLE_COLUMNS`; measurements by
    :func:`mmcell.exporters.measurements.nucleus_measurements`; ``outline`` its :func:`cell_polygon` if at hand)."""
    ys, xs = np.nonzero(cell.mask)
    cx, cy = float(xs.mean()) + cell.x1 + 0.5, float(ys.mean()) + cell.y1 + 0.5
    bx1, by1, bx2, by2 = int(xs.min()) + cell.x1, int(ys.min()) + cell.y1, int(xs.max()) + cell.x1 + 1, \
        int(ys.max()) + cell.y1 + 1
    measures = nucleus_measurements(cell.mask, mpp, cell.means, outline)
    name, second = class_name(class_names, cell.label), ''
    margin = float(cell.margin)
    if math.isfinite(margin) and cell.runner_up >= 0:
        second, margin = class_name(class_names, cell.runner_up), round(margin, 5)
    return {'id': cell.id, 'uuid': cell_uuid(slide_key, cell.id), 'class_id': cell.label + 1, 'class': name,
            'score': round(float(cell.score), 5), 'class_margin': margin if second else '', 'second_class': second,
            'centroid_x': round(cx, 2), 'centroid_y': round(cy, 2),
            'centroid_x_um': round(cx * mpp, 3), 'centroid_y_um': round(cy * mpp, 3), 'bbox_x1': bx1,
            'bbox_y1': by1, 'bbox_x2': bx2, 'bbox_y2': by2, 'bbox_x1_um': round(bx1 * mpp, 3),
            'bbox_y1_um': round(by1 * mpp, 3), 'bbox_x2_um': round(bx2 * mpp, 3), 'bbox_y2_um': round(by2 * mpp, 3),
            'area_px': int(measures['area_px']),
            **_rounded(measures, SLIDE_TABLE_COLUMNS[SLIDE_TABLE_COLUMNS.index('area_um2'):])}


def geojson_feature(row: dict, geometry: dict, color: Sequence[int], object_id: Optional[str] = None,
                    calibrated: bool = True) -> dict:
    """A QuPath detection Feature for a table row (slide or image table) and its outline (:func:`cell_polygon`).

    Measurements: ``Label`` (the id), ``Score``, ``Class margin`` (when known), ``Area px``, QuPath's nucleus
    measurements (:func:`mmcell.exporters.measurements.measurement_dict`; in pixels when not ``calibrated``) and the
    RGB means.
    """
    measurements = {'Label': row['id'], 'Score': row['score'], 'Area px': row.get('area_px', row.get('area'))}
    if isinstance(row.get('class_margin'), float):
        measurements['Class margin'] = row['class_margin']
    measurements.update(measurement_dict(row, calibrated))
    measurements.update({name: row[key] for name, key in RGB_MEASUREMENTS
                         if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])})
    return {'type': 'Feature', 'id': object_id or row['uuid'], 'geometry': geometry,
            'properties': {'objectType': 'detection',
                           'classification': {'name': row['class'], 'color': [int(c) for c in color]},
                           'measurements': measurements}}


#: QuPath measurement name <- table column of the colour means
RGB_MEASUREMENTS = (('Nucleus: Red mean', 'mean_r'), ('Nucleus: Green mean', 'mean_g'),
                    ('Nucleus: Blue mean', 'mean_b'))


def geojson_metadata(config: Any = None, checkpoint: Any = None, **extra: Any) -> dict:
    """The ``metadata`` block of mmcell's GeoJSON files: the config and checkpoint names (file names), the mmcell
    version and anything in ``extra`` (None values left out)."""
    meta = dict(software=f'mmcell {__version__}', config=osp.basename(str(config)) if config else None,
                checkpoint=osp.basename(str(checkpoint)) if checkpoint else None, **extra)
    return {k: v for k, v in meta.items() if v is not None}


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


class _FeatureStream:
    """A FeatureCollection written one feature at a time (gzip when the path ends with ``.gz``)."""

    def __init__(self, path: str, metadata: Optional[dict]) -> None:
        self._fh = open_stream(path)
        head = json.dumps(metadata or {}, ensure_ascii=False, allow_nan=False, sort_keys=True)
        self._fh.write(f'{{"type": "FeatureCollection", "metadata": {head}, "features": [\n'.encode())
        self.count = 0

    def write(self, feature: dict) -> None:
        text = json.dumps(feature, ensure_ascii=False, allow_nan=False)
        self._fh.write(((',\n' if self.count else '') + text).encode('utf-8'))
        self.count += 1

    def close(self) -> None:
        self._fh.write(b'\n]}\n')
        self._fh.close()


class CellWriter:
    """Stream cells into ``cells.geojson.gz`` and ``cells.csv.gz`` (one :meth:`add` per cell, ids in order).

    Args:
        geojson_path, table_path: the files (gzip when they end with ``.gz``); inside a folder made with
            :func:`mmcell.utils.fileio.atomic_dir`, so they appear only when complete.
        mpp: microns per level-0 pixel.
        class_names, colors: from :func:`class_names_colors`.
        slide_key: makes the cell UUIDs (``cell_uuid``) specific to the slide.
        metadata: the FeatureCollection's ``metadata`` block (:func:`geojson_metadata`).
        review_path, review_below: also write the cells scoring below ``review_below`` to ``review_path`` as
            classified QuPath *annotations* (editable, unlike detections), the same ids, outlines and measurements;
            each named for why (``check outline: score 0.42`` or ``check class: epithelial or spindle?``).
        review_margin: with ``review_below``, also the cells whose class margin (:class:`Cell`) is below this: the
            box head hesitated between two classes (cells without a margin are never flagged for it). Such a cell
            is named for its class even when it also scores below ``review_below``; as a score ``s`` implies a
            margin of at least ``2s - 1``, the margin adds cells beyond the low scorers only when it exceeds
            ``2 * review_below - 1`` (``--review-below 0.6``: above 0.2).
    """

    def __init__(self, geojson_path: str, table_path: str, mpp: float, class_names: Sequence[str],
                 colors: Sequence[Sequence[int]], slide_key: str, metadata: Optional[dict] = None,
                 review_path: Optional[str] = None, review_below: Optional[float] = None,
                 review_margin: Optional[float] = None) -> None:
        self.mpp, self.class_names, self.colors, self.slide_key = mpp, tuple(class_names), list(colors), slide_key
        self._geo = _FeatureStream(geojson_path, metadata)
        self.review_below, self.review_margin = review_below, review_margin
        self._review = None
        self.review_reasons = {'score': 0, 'class': 0}
        if review_path is not None and review_below is not None:
            head = {**(metadata or {}), 'review_below': review_below}
            if review_margin is not None:
                head['review_margin'] = review_margin
            self._review = _FeatureStream(review_path, head)
        self._table_fh = open_stream(table_path)
        self._table_text = io.TextIOWrapper(self._table_fh, encoding='utf-8', newline='')
        self._table = csv.DictWriter(self._table_text, fieldnames=SLIDE_TABLE_COLUMNS)
        self._table.writeheader()
        self.count = 0

    @property
    def review_count(self) -> int:
        return self._review.count if self._review is not None else 0

    def add(self, cell: Cell) -> dict:
        """Write one cell to the files; returns its table row."""
        geometry = cell_polygon(cell.mask, cell.x1, cell.y1)
        row = cell_row(cell, self.mpp, self.class_names, self.slide_key, geometry)
        color = self.colors[cell.label] if cell.label < len(self.colors) else (128, 128, 128)
        feature = geojson_feature(row, geometry, color)
        self._geo.write(feature)
        why = self._review_reason(cell, row) if self._review is not None else None
        if why is not None:
            feature['properties']['objectType'] = 'annotation'
            feature['properties']['name'] = why
            self._review.write(feature)
        self._table.writerow(row)
        self.count += 1
        return row

    def _review_reason(self, cell: Cell, row: dict) -> Optional[str]:
        """Why a cell goes to review.geojson (its QuPath name), or None."""
        # the class first: the box head's scores are one softmax, so a score s leaves at most 1 - s to the other
        # classes (margin >= 2s - 1); a low score with a low margin is a class split between two, not a bad outline
        if self.review_margin is not None and row['second_class'] and cell.margin < self.review_margin:
            self.review_reasons['class'] += 1
            return f'check class: {row["class"]} or {row["second_class"]}?'
        if cell.score < self.review_below:
            self.review_reasons['score'] += 1
            return f'check outline: score {cell.score:.2f}'
        return None

    def close(self) -> None:
        self._geo.close()
        if self._review is not None:
            self._review.close()
        self._table_text.flush()
        self._table_text.close()

    def __enter__(self) -> CellWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DetectionWriter:
    """Stream a slide's detections into ``detections.json.gz``: the slide's counterpart of the contest file of
    ``tools/predict.py`` (:mod:`mmcell.evaluation.submission`), for scoring (AP ranks every detection by score).

    One JSON list, one entry per detection as the model returned it: ``bbox`` (COCO ``[x, y, w, h]``, level-0 px),
    ``score``, ``category_id`` (label + 1), ``segmentation`` (COCO RLE of the detection's own mask in a slide-sized
    image, so masks of neighbours may overlap, as in the contest file), and ``image_id`` 0. Unlike the cells of
    :class:`CellWriter` (the label image people read: every pixel to one nucleus, confident nuclei only) nothing is
    trimmed or dropped but the duplicates of the seams (each detection belongs to the one tile whose core holds its
    box centre).
    """

    def __init__(self, path: str, height: int, width: int) -> None:
        self.height, self.width = int(height), int(width)
        self._fh = open_stream(path)
        self._fh.write(b'[\n')
        self.count = 0

    def add(self, x1: int, y1: int, mask: np.ndarray, score: float, label: int) -> None:
        """One detection: its ``mask`` crop placed at level-0 ``(x1, y1)``."""
        h, w = mask.shape
        entry = dict(image_id=0, bbox=[int(x1), int(y1), int(w), int(h)], score=round(float(score), 6),
                     category_id=int(label) + 1,
                     segmentation=crop_rle(mask, int(x1), int(y1), self.height, self.width, text=True))
        text = json.dumps(entry, allow_nan=False)
        self._fh.write(((',\n' if self.count else '') + text).encode('utf-8'))
        self.count += 1

    def close(self) -> None:
        self._fh.write(b'\n]\n')
        self._fh.close()

    def __enter__(self) -> DetectionWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
