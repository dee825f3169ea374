"""``cell_polygon``: outlines along pixel edges, so a polygon's area is its pixel count (holes as interior rings,
several parts as a MultiPolygon) and the converters' centre-inside rasterisation gives the mask back."""
from __future__ import annotations

import numpy as np
import pytest

from mmcell.datasets.converters.imagescope import polygon_pixels
from mmcell.structures.cells import cell_polygon, polygon_rings


def shoelace(ring) -> float:
    pts = np.asarray(ring, np.float64)
    return 0.5 * float(np.dot(pts[:-1, 0], pts[1:, 1]) - np.dot(pts[1:, 0], pts[:-1, 1]))


def geometry_area(geometry: dict) -> float:
    """Area as QuPath / JTS compute it: exterior minus holes (rings' signed areas, holes run the other way)."""
    return sum(abs(shoelace(poly[0])) - sum(abs(shoelace(r)) for r in poly[1:]) for poly in polygon_rings(geometry))


def rasterise(geometry: dict, x1: int, y1: int, height: int, width: int) -> np.ndarray:
    """The mask a converter paints from the geometry (pixel centres inside an exterior and outside its holes)."""
    out = np.zeros(height * width, np.int64)
    for poly in polygon_rings(geometry):
        for k, ring in enumerate(poly):
            pts = np.asarray(ring, np.float64) - (x1, y1)
            out[polygon_pixels(pts, height, width)] += 1 if k == 0 else -1
    return out.reshape(height, width) > 0


def ring_with_hole_and_second_part() -> np.ndarray:
    yy, xx = np.mgrid[0:40, 0:60]
    disc = (xx - 18) ** 2 + (yy - 20) ** 2 <= 15 ** 2
    hole = (xx - 20) ** 2 + (yy - 18) ** 2 <= 5 ** 2
    second = (xx - 50) ** 2 + (yy - 12) ** 2 <= 6 ** 2
    return (disc & ~hole) | second


def test_hole_and_two_parts_exact_area():
    mask = ring_with_hole_and_second_part()
    geometry = cell_polygon(mask, 1000, 2000)
    assert geometry['type'] == 'MultiPolygon'
    polys = polygon_rings(geometry)
    assert sorted(len(p) for p in polys) == [1, 2]  # the ring has one hole, the second part none
    assert geometry_area(geometry) == mask.sum()
    for poly in polys:
        assert shoelace(poly[0]) > 0 and all(shoelace(r) < 0 for r in poly[1:])  # holes run the other way
        for ring in poly:
            assert ring[0] == ring[-1] and all(float(v).is_integer() for pt in ring for v in pt)  # pixel corners
    assert np.array_equal(rasterise(geometry, 1000, 2000, *mask.shape), mask)


def test_single_part_is_a_polygon_at_pixel_edges():
    mask = np.zeros((3, 4), bool)
    mask[1:3, 1:4] = True
    assert cell_polygon(mask, 10, 20) == {'type': 'Polygon',
                                          'coordinates': [[[14, 21], [14, 23], [11, 23], [11, 21], [14, 21]]]}


def test_corner_touching_pixels_and_holes_stay_valid():
    """Pixels meeting at a corner are two parts; two holes meeting at a corner two holes (OGC-valid rings)."""
    shapely = pytest.importorskip('shapely.geometry')
    mask = np.ones((6, 6), bool)
    mask[2, 2] = mask[3, 3] = False  # two holes touching at a corner
    mask[0, 5] = False
    mask[0, 4] = mask[1, 5] = True
    geometry = cell_polygon(mask, 0, 0)
    shape = shapely.shape(geometry)
    assert shape.is_valid and shape.area == mask.sum() == geometry_area(geometry)
    diag = np.eye(3, dtype=bool)
    geometry = cell_polygon(diag, 0, 0)
    assert geometry['type'] == 'MultiPolygon' and len(geometry['coordinates']) == 3
    assert shapely.shape(geometry).is_valid


def test_random_masks_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = rng.integers(1, 14, size=2)
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.9)
        if not mask.any():
            continue
        geometry = cell_polygon(mask, 7, 3)
        assert geometry_area(geometry) == mask.sum()
        assert np.array_equal(rasterise(geometry, 7, 3, h, w), mask)
