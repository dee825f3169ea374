"""Cell records: one nucleus of a whole slide (:class:`Cell`), cells packed into arrays for a worker or a file
(:class:`CellChunk`, :func:`pack_cells`), and the outline of a cell mask along pixel edges (:func:`cell_polygon`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import cv2
import numpy as np


@dataclass
class Cell:
    """One nucleus of a slide: its final (visible, non-overlapping) mask as a crop at ``(x1, y1)`` level-0 px.

    ``means`` holds the intensity statistics of the nucleus pixels (``exporters.measurements.INTENSITY_FIELDS``: mean
    R, G, B, hematoxylin and eosin optical density means, hematoxylin std dev and max; work folders of older runs
    hold the first five). ``margin`` is how sure the box head was of the class (its class score minus the best other
    class score; NaN when not kept, e.g. one-class models) and ``runner_up`` that other class (-1 when not kept).
    """
    id: int
    label: int
    score: float
    x1: int
    y1: int
    mask: np.ndarray
    means: Tuple[float, ...] = (float('nan'),) * 7
    margin: float = float('nan')
    runner_up: int = -1


def cell_polygon(mask: np.ndarray, x1: int, y1: int) -> dict:
    """The outline of a crop as a GeoJSON geometry (level-0 px): a ``Polygon``, or a ``MultiPolygon`` when the mask
    has several parts.

    The rings follow pixel *edges*, as QuPath's own tracing does: pixel ``(r, c)`` of the crop is the square
    ``[x1 + c, x1 + c + 1] x [y1 + r, y1 + r + 1]``, so a polygon's area is exactly its pixel count, holes are
    interior rings and every pixel centre lies strictly inside or outside (the converters' centre-inside
    rasterisation gives the mask back). Parts are 4-connected: pixels touching only at a corner make two polygons
    touching at that corner (a valid MultiPolygon, never a ring that crosses itself). Exterior rings run
    counter-clockwise as drawn on screen (y down), holes the other way; each ring is closed and keeps only its
    corners.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError('cell_polygon: empty mask')
    count, parts = cv2.connectedComponents(np.ascontiguousarray(mask, np.uint8), connectivity=4)
    count -= 1
    rings = _edge_rings(mask, parts)
    polygons: List[List[np.ndarray]] = [[] for _ in range(count)]
    for ring, part in rings:
        if _signed_area(ring) > 0:
            polygons[part - 1].insert(0, ring)
        else:
            polygons[part - 1].append(ring)
    coords = [[[[int(x) + x1, int(y) + y1] for x, y in np.vstack([r, r[:1]])] for r in poly] for poly in polygons]
    if len(coords) == 1:
        return {'type': 'Polygon', 'coordinates': coords[0]}
    return {'type': 'MultiPolygon', 'coordinates': coords}


def polygon_rings(geometry: dict) -> List[List[List[List[float]]]]:
    """The polygons of a GeoJSON ``Polygon`` / ``MultiPolygon`` geometry, each a list of rings (exterior first)."""
    if geometry['type'] == 'Polygon':
        return [geometry['coordinates']]
    return list(geometry['coordinates'])


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]) + x[-1] * y[0] - x[0] * y[-1])


# unit steps of the boundary: the mask lies on the right of each step (y down), so exterior rings have positive
# signed area (shoelace in image coordinates) and holes negative
def _edge_rings(mask: np.ndarray, parts: np.ndarray) -> List[Tuple[np.ndarray, int]]:
    """Every boundary ring of ``mask`` as ``((n, 2) int corners x, y, the 4-connected part it bounds)``; ``parts``
    are its 4-connected parts (1..N)."""
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), bool)
    pad[1:-1, 1:-1] = mask
    fg = pad[1:-1, 1:-1]
    starts, codes, owner = [], [], []
    # one unit edge per foreground pixel side facing background: (neighbour offset, start corner offset); the step
    # codes 0..3 are +x, +y, -x, -y (the mask on the right), so code + 1 (mod 4) is a right turn
    for code, ((dr, dc), (sx, sy)) in enumerate((((-1, 0), (0, 0)), ((0, 1), (1, 0)), ((1, 0), (1, 1)),
                                                  ((0, -1), (0, 1)))):
        rr, cc = np.nonzero(fg & ~pad[1 + dr:h + 1 + dr, 1 + dc:w + 1 + dc])
        starts.append(np.stack([cc + sx, rr + sy], axis=1))
        codes.append(np.full(len(rr), code, np.int64))
        owner.append(parts[rr, cc])
    start, code, part = np.concatenate(starts), np.concatenate(codes), np.concatenate(owner)
    end = start + _STEPS[code]
    key = start[:, 1] * (w + 1) + start[:, 0]
    order = np.argsort(key * 4 + code, kind='stable')
    sorted_key = key[order]
    end_key = end[:, 1] * (w + 1) + end[:, 0]
    lo = np.searchsorted(sorted_key, end_key, 'left')
    two = np.searchsorted(sorted_key, end_key, 'right') - lo == 2
    first = order[lo]
    second = order[np.minimum(lo + 1, len(order) - 1)]
    # at a corner shared by two diagonal pixels (two edges leave it) turn right, keeping to the same pixel
    nxt = np.where(two & (code[first] != (code + 1) % 4), second, first)
    is_corner = code[nxt] != code
    rings = []
    visited = [False] * len(key)
    nxt_l, corner_l = nxt.tolist(), is_corner.tolist()
    for e0 in range(len(key)):
        if visited[e0]:
            continue
        cycle = []
        e = e0
        while not visited[e]:
            visited[e] = True
            if corner_l[e]:
                cycle.append(e)
            e = nxt_l[e]
        corners = end[cycle]
        keys = corners[:, 1] * (w + 1) + corners[:, 0]
        simple = [corners] if len(np.unique(keys)) == len(keys) else _simple_rings(list(corners))
        rings += [(ring, int(part[e0])) for ring in simple]
    return rings


_STEPS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.int64)


def _simple_rings(corners: List[np.ndarray]) -> List[np.ndarray]:
    """Split a closed walk that passes a corner twice (two holes, or a hole and the outside, meeting at a corner)
    into rings that do not touch themselves (OGC-valid; the corner stays shared)."""
    rings, path, seen = [], [], {}
    for pt in corners:
        key = (int(pt[0]), int(pt[1]))
        if key in seen:
            at = seen[key]
            rings.append(np.array(path[at:], np.int64))
            for old in path[at + 1:]:
                del seen[(int(old[0]), int(old[1]))]
            del path[at + 1:]
        else:
            seen[key] = len(path)
            path.append(pt)
    if len(path) >= 3:
        rings.append(np.array(path, np.int64))
    return rings


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
