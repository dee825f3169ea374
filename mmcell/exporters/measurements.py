"""QuPath's nucleus measurements, computed one way for ``mmcell segment`` (images) and ``mmcell segment-slide``
(slides): :func:`nucleus_measurements` of a nucleus mask (+ :func:`intensity_statistics` of its pixels).

Shape (``mask`` pixels are unit squares, their outline the pixel-edge polygon of
:func:`mmcell.structures.cells.cell_polygon`):

- area: the pixel count (= the outline's polygon area);
- the *outline*: the pixel-edge polygon simplified with Douglas-Peucker at 1 px (the staircase of pixel edges is up to
  4/pi too long on a curve; the simplified outline is exact on a straight-sided shape and within a few per cent on a
  disc or ellipse of 10 px radius and more);
- perimeter: the length of the outline of the largest part;
- circularity: ``4 pi area / perimeter^2`` (at most 1; QuPath clips it the same way);
- solidity: area / area of the convex hull of the outline (at most 1);
- max / min caliper: the largest / smallest width of that convex hull (Feret diameters, rotating calipers);
- eccentricity: ``sqrt(1 - minor^2 / major^2)`` of the ellipse with the same second moments (pixels as squares).

Stain: hematoxylin / eosin optical densities of the nucleus pixels with QuPath's definitions
(:func:`mmcell.datasets.stain.deconvolve_stains`: per pixel ``OD = -log10(max(value, 1) / 255)``, QuPath's *H&E
default* vectors and residual, or the stain vectors given): hematoxylin mean, std dev and max, eosin mean, and the RGB
means. They equal QuPath's own measurements of the same pixels with *H&E default* stains; with an image's estimated
vectors QuPath's values differ by that estimate (pass them as ``stains``).

:data:`NUCLEUS_MEASUREMENTS` names every measurement as QuPath spells its own cell detection's ``Nucleus: ...``
measurements (``Nucleus: Solidity`` as QuPath's shape features name it); the pixel versions (``Nucleus: Area px``)
are used when the image has no microns per pixel.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmcell.datasets.stain import QUPATH_H_E, StainVectors, deconvolve_stains
from mmcell.structures.cells import cell_polygon, polygon_rings

#: what :func:`intensity_statistics` returns, in order
INTENSITY_FIELDS = ('mean_r', 'mean_g', 'mean_b', 'mean_hematoxylin', 'mean_eosin', 'std_hematoxylin',
                    'max_hematoxylin')
#: table columns of :func:`nucleus_measurements` (``*_um`` only with an mpp)
SHAPE_FIELDS = ('area_px', 'area_um2', 'perimeter_px', 'perimeter_um', 'circularity', 'solidity', 'max_caliper_px',
                'min_caliper_px', 'max_caliper_um', 'min_caliper_um', 'eccentricity')
#: QuPath measurement name <- column (calibrated slides / images)
NUCLEUS_MEASUREMENTS: Tuple[Tuple[str, str], ...] = (
    ('Nucleus: Area µm^2', 'area_um2'), ('Nucleus: Perimeter µm', 'perimeter_um'),
    ('Nucleus: Circularity', 'circularity'), ('Nucleus: Solidity', 'solidity'),
    ('Nucleus: Max caliper µm', 'max_caliper_um'), ('Nucleus: Min caliper µm', 'min_caliper_um'),
    ('Nucleus: Eccentricity', 'eccentricity'), ('Nucleus: Hematoxylin OD mean', 'mean_hematoxylin'),
    ('Nucleus: Hematoxylin OD std dev', 'std_hematoxylin'), ('Nucleus: Hematoxylin OD max', 'max_hematoxylin'),
    ('Nucleus: Eosin OD mean', 'mean_eosin'))
#: the same in pixels, written when there is no mpp (``mmcell segment`` without ``--mpp``)
NUCLEUS_MEASUREMENTS_PX: Tuple[Tuple[str, str], ...] = (
    ('Nucleus: Area px', 'area_px'), ('Nucleus: Perimeter px', 'perimeter_px'),
    ('Nucleus: Max caliper px', 'max_caliper_px'), ('Nucleus: Min caliper px', 'min_caliper_px'))
TOLERANCE_PX = 1.0  # Douglas-Peucker tolerance of the outline the shape measurements use


def intensity_statistics(pixels: Optional[np.ndarray], stains: StainVectors = QUPATH_H_E) -> np.ndarray:
    """:data:`INTENSITY_FIELDS` of ``(n, 3)`` uint8 RGB nucleus pixels (NaN without pixels); the stain fields are
    QuPath's optical densities with ``stains`` (default QuPath's *H&E default*)."""
    if pixels is None or not len(pixels):
        return np.full(len(INTENSITY_FIELDS), np.nan)
    pixels = np.asarray(pixels).reshape(-1, 3)
    hed = deconvolve_stains(pixels, stains)
    rgb = pixels.astype(np.float64).mean(0)
    return np.array([rgb[0], rgb[1], rgb[2], hed[:, 0].mean(), hed[:, 1].mean(), hed[:, 0].std(), hed[:, 0].max()])


def _hull_calipers(points: np.ndarray) -> Tuple[float, float, float]:
    """Area, max and min width of the convex hull of ``points``."""
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    if len(hull) < 3:
        return 0.0, 0.0, 0.0
    area = 0.5 * abs(float(np.dot(hull[:, 0], np.roll(hull[:, 1], -1)) - np.dot(np.roll(hull[:, 0], -1), hull[:, 1])))
    diff = hull[:, None, :] - hull[None, :, :]
    max_width = float(np.sqrt((diff ** 2).sum(-1)).max())
    edges = np.roll(hull, -1, axis=0) - hull
    normals = np.stack([-edges[:, 1], edges[:, 0]], 1) / np.maximum(np.hypot(edges[:, 0], edges[:, 1]), 1e-12)[:, None]
    proj = hull @ normals.T  # (points, edges)
    min_width = float((proj.max(0) - proj.min(0)).min())
    return area, max_width, min_width


def nucleus_measurements(mask: np.ndarray, mpp: Optional[float] = None,
                         intensity: Optional[Sequence[float]] = None,
                         outline: Optional[dict] = None) -> Dict[str, float]:
    """The shape and stain measurements of one nucleus (see the module docstring).

    Args:
        mask: ``(h, w)`` bool crop of the nucleus (any position: shape measurements do not depend on it).
        mpp: microns per pixel of the mask; None: the ``*_um`` fields are NaN.
        intensity: :func:`intensity_statistics` of its pixels (NaN fields without).
        outline: its :func:`cell_polygon` (at any offset) when the caller has it already.

    Returns:
        ``{field: value}`` for :data:`SHAPE_FIELDS` and :data:`INTENSITY_FIELDS`.
    """
    mask = np.asarray(mask, bool)
    area = int(mask.sum())
    polys = polygon_rings(outline if outline is not None else cell_polygon(mask, 0, 0))
    simple = [cv2.approxPolyDP(np.asarray(p[0][:-1], np.float32).reshape(-1, 1, 2), TOLERANCE_PX, True)
              for p in polys]
    perimeter = max(float(cv2.arcLength(s, True)) for s in simple)  # of the largest part
    hull_area, max_caliper, min_caliper = _hull_calipers(np.concatenate([s.reshape(-1, 2) for s in simple]))
    ys, xs = np.nonzero(mask)
    cov = np.cov(np.stack([xs, ys]).astype(np.float64), bias=True) + np.eye(2) / 12.0  # pixels as unit squares
    low, high = np.linalg.eigvalsh(cov)
    scale = float(mpp) if mpp else float('nan')
    out = dict(area_px=area, area_um2=area * scale * scale, perimeter_px=perimeter, perimeter_um=perimeter * scale,
               circularity=min(1.0, 4 * math.pi * area / perimeter ** 2) if perimeter > 0 else float('nan'),
               solidity=min(1.0, area / hull_area) if hull_area > 0 else 1.0, max_caliper_px=max_caliper,
               min_caliper_px=min_caliper, max_caliper_um=max_caliper * scale, min_caliper_um=min_caliper * scale,
               eccentricity=math.sqrt(max(0.0, 1.0 - low / high)) if high > 0 else 0.0)
    values = np.full(len(INTENSITY_FIELDS), np.nan) if intensity is None else np.asarray(intensity, np.float64)
    values = np.concatenate([values, np.full(len(INTENSITY_FIELDS) - len(values), np.nan)])  # older 5-value records
    out.update(zip(INTENSITY_FIELDS, (float(v) for v in values)))
    return out


def measurement_dict(row: dict, calibrated: bool) -> Dict[str, float]:
    """The QuPath measurements of a table row (finite values only): :data:`NUCLEUS_MEASUREMENTS`, or with
    ``calibrated`` False the pixel versions of the size measurements."""
    names = NUCLEUS_MEASUREMENTS if calibrated else NUCLEUS_MEASUREMENTS_PX + tuple(
        (n, k) for n, k in NUCLEUS_MEASUREMENTS if not k.endswith(('_um', '_um2')))
    return {name: row[key] for name, key in names
            if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])}
