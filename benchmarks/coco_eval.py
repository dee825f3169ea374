"""COCO evaluation time: CellCocoMetric (faster-coco-eval) vs plain pycocotools on the same random predictions
(figures must agree to 1e-6). Prints a table and appends it to ``--results`` (default benchmarks/RESULTS.md; ''
to skip).

Both evaluate and accumulate the same random scene (nuclei-like discs, many detections per image) with
``maxDets=(100, 1000)``, i.e. the contest AP50 and the maxDets-1000 figures in one pass, and must agree to 1e-6.

    .venv/bin/python benchmarks/coco_eval.py --images 100 --dets 1000
"""
from __future__ import annotations

import datetime
import os
import platform
import sys
import time

import numpy as np
import pycocotools.mask as pmask
from faster_coco_eval import COCO as FastCOCO
from pycocotools.coco import COCO as PyCOCO
from pycocotools.cocoeval import COCOeval as PyCOCOeval

from mmcell.evaluation.metrics.cell_coco_metric import average_precision, evaluate_coco
from mmcell.utils.errors import ToolArgumentParser
from mmcell.utils.fileio import write_results_section

MAX_DETS = [100, 1000]


def _disc_rle(cy: float, cx: float, r: float, h: int, w: int) -> dict:
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    poly = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).ravel().tolist()
    rle = pmask.merge(pmask.frPyObjects([poly], h, w))
    rle['counts'] = rle['counts'].decode()
    return rle


def make_scene(num_images: int, dets_per_image: int, gts_per_image: int, size: int, seed: int = 0) -> tuple:
    """COCO ground truth (4 classes) and ``dets_per_image`` detections per image: jittered truths + noise."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for img_id in range(1, num_images + 1):
        images.append(dict(id=img_id, height=size, width=size, file_name=f'{img_id}.tif'))
        centres = rng.uniform(8, size - 8, (gts_per_image, 2))
        radii = rng.uniform(3, 9, gts_per_image)
        labels = rng.choice(4, gts_per_image, p=[0.26, 0.69, 0.03, 0.02]) + 1
        for (cy, cx), r, label in zip(centres, radii, labels):
            rle = _disc_rle(cy, cx, r, size, size)
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=int(label), iscrowd=0,
                             segmentation=rle, area=float(pmask.area(rle)),
                             bbox=pmask.toBbox(rle).tolist()))
        for j in range(dets_per_image):
            if j < gts_per_image * 2:
                k = j % gts_per_image
                cy, cx = centres[k] + rng.normal(0, 1.5, 2)
                r = radii[k] * rng.uniform(0.8, 1.2)
                label = int(labels[k]) if rng.random() < 0.9 else int(rng.integers(1, 5))
            else:
                cy, cx = rng.uniform(8, size - 8, 2)
                r, label = rng.uniform(3, 9), int(rng.integers(1, 5))
            dets.append(dict(image_id=img_id, category_id=label, score=float(rng.random()),
                             segmentation=_disc_rle(cy, cx, r, size, size)))
    gt = dict(images=images, annotations=anns, categories=[dict(id=i, name=f'c{i}') for i in range(1, 5)])
    return gt, dets


def run_pycocotools(gt: dict, dets: list, iou_type: str) -> tuple:
    tic = time.perf_counter()
    coco_gt = PyCOCO()
    coco_gt.dataset = gt
    coco_gt.createIndex()
    ev = PyCOCOeval(coco_gt, coco_gt.loadRes([dict(d) for d in dets]), iou_type)
    ev.params.maxDets = MAX_DETS
    ev.evaluate()
    ev.accumulate()
    return time.perf_counter() - tic, ev.eval['precision'], ev.params.iouThrs


def run_faster(gt: dict, dets: list, iou_type: str) -> tuple:
    tic = time.perf_counter()
    coco_gt = FastCOCO(gt, print_function=lambda *a, **k: None)
    ev = evaluate_coco(coco_gt, dets, iou_type, cat_ids=[1, 2, 3, 4], img_ids=coco_gt.getImgIds(),
                       max_dets=MAX_DETS)
    return time.perf_counter() - tic, ev.eval['precision'], ev.params.iouThrs


def main() -> None:
    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=100)
    parser.add_argument('--dets', type=int, default=1000, help='detections per image')
    parser.add_argument('--gts', type=int, default=300, help='ground-truth nuclei per image')
    parser.add_argument('--size', type=int, default=512, help='image side in pixels')
    parser.add_argument('--iou-types', nargs='+', default=['segm', 'bbox'], choices=['segm', 'bbox'])
    parser.add_argument('--results', default='benchmarks/RESULTS.md', help="append here ('' to skip)")
    args = parser.parse_args()

    print(f'building {args.images} images x {args.dets} detections ({args.gts} nuclei each) ...', flush=True)
    gt, dets = make_scene(args.images, args.dets, args.gts, args.size)
    rows = []
    for iou_type in args.iou_types:
        if iou_type == 'bbox':
            dets_t = [dict(image_id=d['image_id'], category_id=d['category_id'], score=d['score'],
                           bbox=pmask.toBbox(d['segmentation']).tolist()) for d in dets]
        else:
            dets_t = dets
        print(f'{iou_type}: faster-coco-eval ...', flush=True)
        t_fast, p_fast, thrs = run_faster(gt, dets_t, iou_type)
        print(f'{iou_type}: pycocotools ...', flush=True)
        t_py, p_py, _ = run_pycocotools(gt, dets_t, iou_type)
        figures = {}
        for name, p in (('fast', p_fast), ('py', p_py)):
            figures[name] = [average_precision(p, thrs, 0.5, maxdet_index=0),
                             average_precision(p, thrs, 0.5, maxdet_index=1), average_precision(p, thrs)]
        diff = max(abs(a - b) for a, b in zip(figures['fast'], figures['py']))
        if diff > 1e-6:
            raise SystemExit(f'{iou_type}: faster-coco-eval and pycocotools disagree by {diff:.2e}')
        rows.append((iou_type, t_py, t_fast, t_py / t_fast, *figures['fast'], diff))

    header = '| iou type | pycocotools s | CellCocoMetric (faster-coco-eval) s | speed-up | AP50 md100 | ' \
             'AP50 md1000 | AP md100 | max abs diff |'
    lines = [header, '|' + '---|' * 8]
    for iou_type, t_py, t_fast, ratio, ap50, ap50_1000, ap, diff in rows:
        lines.append(f'| {iou_type} | {t_py:.2f} | {t_fast:.2f} | {ratio:.1f}x | {ap50:.4f} | {ap50_1000:.4f} | '
                     f'{ap:.4f} | {diff:.1e} |')
    table = '\n'.join(lines)
    print(table)
    if args.results:
        command = ('.venv/bin/python benchmarks/coco_eval.py ' + ' '.join(sys.argv[1:])).strip()
        text = (f'## COCO evaluation: CellCocoMetric (faster-coco-eval) vs pycocotools\n'
                f'- date: {datetime.date.today()}; machine: 2-core CPU dev box, no GPU '
                f'({platform.processor() or "cpu"}, {os.cpu_count()} logical CPUs, shared)\n'
                f'- command: `{command}`\n'
                f'- scene: {args.images} images {args.size}x{args.size}, {args.gts} nuclei and {args.dets} '
                f'detections per image, 4 classes; evaluate + accumulate with maxDets (100, 1000)\n\n{table}\n')
        write_results_section(args.results, text)
        print(f'wrote its section of {args.results}')


if __name__ == '__main__':
    main()
