"""Aperio ImageScope XML polygons (MoNuSeg, MoNuSAC) and their rasterisation.

XML layout: ``Annotations/Annotation`` (one per layer; MoNuSAC names the class in
``Annotation/Attributes/Attribute/@Name``) ``/Regions/Region/Vertices/Vertex`` with float ``X`` (column) and ``Y``
(row) in level-0 pixels.

Rasterisation rule (one rule for every polygon): **a pixel belongs to a polygon when its centre lies inside it**.
Pixel ``(row r, column c)`` covers ``[c, c + 1) x [r, r + 1)`` in ImageScope/QuPath coordinates, so its centre is
``(x, y) = (c + 0.5, r + 0.5)``; the inside test is matplotlib's ``Path.contains_points`` (even-odd crossing
test, the one mmcell's runtime already ships), evaluated only on the centres inside the polygon's bounding box.
Polygons running past the image border are clipped to it; a polygon with fewer than 3 vertices or no pixel centre
inside it is *degenerate* and skipped (counted). Overlaps follow :mod:`.common` (smaller instance wins).
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from mmcell.utils.errors import HW3FormatError, PathLike

#: a vertex farther than this outside the image means the XML belongs to another image (or another scale);
#: real polygons of nuclei cut by the border overshoot by a few pixels (MoNuSeg training set: at most 2.9 px)
MAX_OUTSIDE_PX = 64


def read_imagescope_xml(path: PathLike) -> List[Tuple[str, List[np.ndarray]]]:
    """Parse an ImageScope XML into ``[(annotation name, [polygon (n, 2) float64 x, y])]``.

    The annotation name is the ``Name`` of its first ``Attribute`` (MoNuSAC puts the class there), else the
    ``Annotation``'s own ``Name`` attribute, else ``''``.

    Raises:
        HW3FormatError: unreadable/malformed XML, no ``Annotation`` element, a vertex without a numeric,
            finite ``X``/``Y``.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise HW3FormatError(path, f'malformed XML ({err})') from None
    except OSError as err:
        raise HW3FormatError(path, f'unreadable XML ({err.strerror or err})') from None
    annotations = [root] if root.tag == 'Annotation' else root.iter('Annotation')
    result = []
    for ann in annotations:
        attr = ann.find('Attributes/Attribute')
        name = (attr.get('Name') if attr is not None else None) or ann.get('Name') or ''
        polygons = []
        for region in ann.iter('Region'):
            region_id = region.get('Id', '?')
            coords = []
            for vertex in region.iter('Vertex'):
                try:
                    x, y = float(vertex.get('X')), float(vertex.get('Y'))
                except (TypeError, ValueError):
                    raise HW3FormatError(path, f'region {region_id}: vertex X={vertex.get("X")!r} '
                                         f'Y={vertex.get("Y")!r} is not a number') from None
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise HW3FormatError(path, f'region {region_id}: vertex X={vertex.get("X")!r} '
                                         f'Y={vertex.get("Y")!r} is not finite')
                coords.append((x, y))
            polygons.append(np.array(coords, np.float64).reshape(-1, 2))
        result.append((name.strip(), polygons))
    if not result:
        raise HW3FormatError(path, 'no Annotation element (not an ImageScope XML?)')
    return result


def polygon_pixels(vertices: np.ndarray, height: int, width: int) -> np.ndarray:
    """Flat (row-major) indices of the pixels whose centre lies inside the polygon, clipped to the image.

    Args:
        vertices: (n, 2) float ``x, y`` (x = column), pixel ``(r, c)`` centred at ``(c + 0.5, r + 0.5)``.
        height, width: image size.

    Returns:
        int64 indices; empty for a degenerate polygon (< 3 vertices, zero area, entirely outside).
    """
    from matplotlib.path import Path as MplPath  # deferred: matplotlib is heavy; only rasterising needs it

    if len(vertices) < 3:
        return np.zeros(0, np.int64)
    (x0, y0), (x1, y1) = vertices.min(axis=0), vertices.max(axis=0)
    c0, c1 = max(math.ceil(x0 - 0.5), 0), min(math.floor(x1 - 0.5), width - 1)
    r0, r1 = max(math.ceil(y0 - 0.5), 0), min(math.floor(y1 - 0.5), height - 1)
    if c0 > c1 or r0 > r1:
        return np.zeros(0, np.int64)
    rows, cols = np.mgrid[r0:r1 + 1, c0:c1 + 1]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    inside = MplPath(vertices, closed=False).contains_points(centres)
    return (rows.ravel()[inside] * width + cols.ravel()[inside]).astype(np.int64)


def check_inside(path: PathLike, polygons: List[np.ndarray], height: int, width: int,
                 image: Optional[PathLike] = None) -> None:
    """Raise when a vertex lies more than :data:`MAX_OUTSIDE_PX` outside the image (annotation of another size)."""
    coords = [p for p in polygons if len(p)]
    if not coords:
        return
    allv = np.concatenate(coords)
    over = np.maximum.reduce([-allv[:, 0], -allv[:, 1], allv[:, 0] - width, allv[:, 1] - height])
    worst = int(np.argmax(over))
    if over[worst] > MAX_OUTSIDE_PX:
        x, y = allv[worst]
        where = f' {image}' if image else ''
        raise HW3FormatError(path, f'vertex ({x:g}, {y:g}) lies {over[worst]:.0f} px outside the {width}x{height} '
                             f'image{where} (annotation of another image size?)')
