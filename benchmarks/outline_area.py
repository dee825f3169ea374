"""Outlines vs measurements: the polygon area QuPath computes for each nucleus outline, over its pixel count, for
the old pixel-centre tracing (cv2.findContours, coordinates at x.5, as mmcell wrote until issue 21) and the
pixel-edge tracing of ``mmcell.structures.cells.cell_polygon``; plus the rasterisation round trip (IoU of the mask
the converters paint back from each outline) and the time per nucleus. Writes its section of benchmarks/RESULTS.md.

    python benchmarks/outline_area.py [--size 2048] [--seed 0] [--no-append]

Nuclei: the ground truth of a synthetic slide (``mmcell.synthetic.slide``). Prints a table and appends it to
benchmarks/RESULTS.md.
"""
from __future__ import annotations

import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from mmcell.datasets.converters.imagescope import polygon_pixels
from mmcell.structures.cells import cell_polygon, polygon_rings
from mmcell.synthetic.slide import read_ground_truth, write_synthetic_slide
from mmcell.utils.errors import ToolArgumentParser
from mmcell.utils.fileio import write_results_section

RESULTS = Path(__file__).resolve().parent / 'RESULTS.md'
HEADING = '## Outlines vs measurements: polygon area / pixel count (pixel centres vs pixel edges)'


def centre_outline(mask: np.ndarray) -> list:
    """The old outline: the longest outer contour through pixel centres (holes dropped), one Polygon ring."""
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    outer = max((i for i in range(len(contours)) if hierarchy[0][i][3] < 0), key=lambda i: len(contours[i]))
    ring = contours[outer][:, 0, :].astype(np.float64) + 0.5
    if len(ring) < 3:  # a line or a dot: its pixel box, as the old code did
        ys, xs = np.nonzero(mask)
        ring = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.max() + 1, ys.max() + 1],
                         [xs.min(), ys.max() + 1]], np.float64)
    return [[np.vstack([ring, ring[:1]])]]


def shoelace(ring) -> float:
    pts = np.asarray(ring, np.float64)
    return abs(0.5 * float(np.dot(pts[:-1, 0], pts[1:, 1]) - np.dot(pts[1:, 0], pts[:-1, 1])))


def area_and_iou(polygons: list, mask: np.ndarray) -> tuple:
    h, w = mask.shape
    area = sum(shoelace(p[0]) - sum(shoelace(r) for r in p[1:]) for p in polygons)
    painted = np.zeros(h * w, np.int64)
    for poly in polygons:
        for k, ring in enumerate(poly):
            painted[polygon_pixels(np.asarray(ring, np.float64)[:-1], h, w)] += 1 if k == 0 else -1
    painted = painted.reshape(h, w) > 0
    return area / mask.sum(), (painted & mask).sum() / (painted | mask).sum()


def main(argv=None) -> None:
    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=2048, help='synthetic slide side (px)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-append', action='store_true', help='do not append to benchmarks/RESULTS.md')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        info = write_synthetic_slide(Path(tmp) / 's.ome.tif', args.size, mpp=0.25, seed=args.seed,
                                     tissue_fraction=0.6)
        ids, _ = read_ground_truth(info['ground_truth'])
    boxes = ndimage.find_objects(ids.astype(np.int64))
    crops = [np.pad(ids[b] == i, 1) for i, b in enumerate(boxes, start=1) if b is not None]
    rows = {}
    for name, outline in (('pixel centres (old)', centre_outline),
                          ('pixel edges (cell_polygon)', lambda m: polygon_rings(cell_polygon(m, 0, 0)))):
        start = time.perf_counter()
        outlines = [outline(m) for m in crops]
        seconds = (time.perf_counter() - start) / len(crops)
        ratios, ious = np.array([area_and_iou(o, m) for o, m in zip(outlines, crops)]).T
        rows[name] = (np.median(ratios), ratios.min(), ratios.max(), np.mean(np.abs(ratios - 1) <= 0.01),
                      ious.min(), np.mean(ious == 1), seconds * 1e3)
    table = [f'{len(crops)} nuclei of a {args.size}^2 synthetic slide (0.25 um/px, seed {args.seed}; median '
             f'{np.median([m.sum() for m in crops]):.0f} px):', '',
             '| outline | area / px median | min | max | within 1 % | round-trip IoU min | IoU = 1 | ms / nucleus |',
             '|---|---|---|---|---|---|---|---|']
    for name, (med, lo, hi, ok, iou_min, exact, ms) in rows.items():
        table.append(f'| {name} | {med:.3f} | {lo:.3f} | {hi:.3f} | {ok:.1%} | {iou_min:.3f} | {exact:.1%} | '
                     f'{ms:.3f} |')
    text = '\n'.join(table)
    print(text)
    if not args.no_append:
        write_results_section(RESULTS, f'{HEADING}\n- date: {date.today()}; machine: the 2-core dev box (shared); '
                              f'command: `python benchmarks/outline_area.py --size {args.size} --seed {args.seed}`'
                              f'\n\n{text}\n')


if __name__ == '__main__':
    main()
