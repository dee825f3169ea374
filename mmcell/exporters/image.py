"""Single-image outputs of ``mmcell segment`` and ``tools/predict.py --save-labels``: the cell table of a label image
and the four files written per image (label TIFF, class TIFF, cells CSV, cells GeoJSON)."""
from __future__ import annotations

import csv
import json
import math
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

import numpy as np
import tifffile
from scipy import ndimage

from mmcell.evaluation.submission import LABEL_SCORE_THR
from mmcell.exporters.cells import cell_uuid, class_name, class_names_colors, geojson_feature
from mmcell.exporters.measurements import intensity_statistics, nucleus_measurements
from mmcell.structures.cells import cell_polygon
from mmcell.structures.label_image import label_image
from mmcell.utils.fileio import atomic_write, atomic_write_text

TABLE_COLUMNS = ('id', 'class_id', 'class', 'score', 'area', 'centroid_x', 'centroid_y', 'bbox_x1', 'bbox_y1',
                 'bbox_x2', 'bbox_y2', 'mean_intensity', 'mean_r', 'mean_g', 'mean_b', 'area_um2', 'perimeter_px',
                 'perimeter_um', 'circularity', 'solidity', 'max_caliper_px', 'min_caliper_px', 'max_caliper_um',
                 'min_caliper_um', 'eccentricity', 'mean_hematoxylin', 'std_hematoxylin', 'max_hematoxylin',
                 'mean_eosin')
#: the :func:`mmcell.exporters.measurements.nucleus_measurements` fields of the table (``*_um`` empty without mpp)
MEASUREMENT_COLUMNS = TABLE_COLUMNS[TABLE_COLUMNS.index('area_um2'):]


@dataclass
class CellSegmentation:
    """Segmentation of one image: label image, class map and the cell table (one dict per label id)."""
    image_path: str
    labels: np.ndarray
    classes: np.ndarray
    table: List[dict] = field(default_factory=list)
    files: dict = field(default_factory=dict)
    mpp: Optional[float] = None


def cell_table(ids: np.ndarray, order: np.ndarray, scores: Sequence[float], labels: Sequence[int],
               image: Optional[np.ndarray] = None, class_names: Sequence[str] = (),
               mpp: Optional[float] = None) -> List[dict]:
    """One row per label id with visible pixels (see ``TABLE_COLUMNS``).

    Args:
        ids: label image from :func:`label_image`.
        order: its ``order`` (input index of each label id).
        scores, labels: the inputs given to :func:`label_image`.
        image: ``(H, W, 3)`` RGB (or ``(H, W)`` grey) for the intensity columns (NaN without it).
        class_names: names of classes 0..K-1.
        mpp: microns per pixel of the image (the ``*_um`` columns; NaN without).

    Area, centroid and bbox are those of the *visible* pixels (after overlap resolution); the bbox is
    ``x1, y1`` inclusive, ``x2, y2`` exclusive. Shape and stain columns: QuPath's nucleus measurements
    (:func:`mmcell.exporters.measurements.nucleus_measurements`, the function ``segment-slide`` uses).
    """

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
        crop = ids[box] == lab_id
        intensity = intensity_statistics(img[box][crop]) if image is not None else None
        measures = nucleus_measurements(crop, mpp, intensity)
        rows.append(dict(
            id=lab_id, class_id=cls + 1, **{'class': class_name(class_names, cls)},
            score=round(float(scores[src]), 6), area=int(area[lab_id]), centroid_x=round(float(cx[lab_id]), 3),
            centroid_y=round(float(cy[lab_id]), 3), bbox_x1=box[1].start, bbox_y1=box[0].start,
            bbox_x2=box[1].stop, bbox_y2=box[0].stop, mean_intensity=round(float(np.mean(means[lab_id])), 3),
            mean_r=round(float(means[lab_id, 0]), 3), mean_g=round(float(means[lab_id, 1]), 3),
            mean_b=round(float(means[lab_id, 2]), 3),
            **{k: round(float(measures[k]), 4) for k in MEASUREMENT_COLUMNS}))
    return rows


def save_labels(seg: CellSegmentation, out_dir: str, dataset_meta: Optional[dict] = None,
                metadata: Optional[dict] = None) -> dict:
    """Write ``<stem>_labels.tif`` (label image), ``<stem>_classes.tif`` (class map), ``<stem>_cells.csv`` and
    ``<stem>_cells.geojson`` (the cells as QuPath detections, as ``segment-slide`` writes them; ``metadata`` is its
    ``metadata`` block, :func:`mmcell.exporters.cells.geojson_metadata`)."""

    stem = osp.splitext(osp.basename(seg.image_path))[0]
    files = dict(labels=osp.join(out_dir, f'{stem}_labels.tif'), classes=osp.join(out_dir, f'{stem}_classes.tif'),
                 table=osp.join(out_dir, f'{stem}_cells.csv'), geojson=osp.join(out_dir, f'{stem}_cells.geojson'))
    atomic_write(files['labels'], lambda p: tifffile.imwrite(p, seg.labels, compression='zlib'))
    atomic_write(files['classes'], lambda p: tifffile.imwrite(p, seg.classes, compression='zlib'))

    def write_csv(p: str) -> None:
        with open(p, 'w', newline='') as fh:
            writer = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS)
            writer.writeheader()
            writer.writerows({k: ('' if isinstance(v, float) and not math.isfinite(v) else v)
                              for k, v in row.items()} for row in seg.table)

    atomic_write(files['table'], write_csv)
    _, colors = class_names_colors(dataset_meta)
    features = []
    for row in seg.table:
        x1, y1, x2, y2 = row['bbox_x1'], row['bbox_y1'], row['bbox_x2'], row['bbox_y2']
        geometry = cell_polygon(seg.labels[y1:y2, x1:x2] == row['id'], x1, y1)
        features.append(geojson_feature(row, geometry, colors[(row['class_id'] - 1) % len(colors)],
                                        cell_uuid(stem, row['id']), calibrated=seg.mpp is not None))
    collection = dict(type='FeatureCollection', metadata=metadata or {}, features=features)
    atomic_write_text(files['geojson'], json.dumps(collection, ensure_ascii=False, allow_nan=False))
    seg.files = files
    return files


def segmentation_of(sample: Any, image_path: str, class_names: Sequence[str] = (),
                    score_thr: Optional[float] = None, image: Optional[np.ndarray] = None,
                    mpp: Optional[float] = None) -> CellSegmentation:
    """Label image, class map and cell table of one prediction (``DetDataSample`` in original pixels); ``mpp``
    (microns per pixel of the image) gives the table its µm columns.

    ``score_thr`` None is :data:`mmcell.evaluation.submission.LABEL_SCORE_THR`.
    """

    score_thr = LABEL_SCORE_THR if score_thr is None else score_thr
    pred = sample.pred_instances
    keep = pred.scores >= score_thr
    pred = pred[keep] if not bool(keep.all()) else pred
    height, width = (int(v) for v in sample.ori_shape[:2])
    ids, classes, order = label_image(pred.masks, pred.scores.cpu().numpy(), pred.labels.cpu().numpy(), height,
                                      width)
    table = cell_table(ids, order, pred.scores.cpu().numpy(), pred.labels.cpu().numpy(), image, class_names, mpp)
    return CellSegmentation(image_path=image_path, labels=ids, classes=classes, table=table, mpp=mpp)
