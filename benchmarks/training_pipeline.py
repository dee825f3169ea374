"""Training-pipeline throughput (images/s) on synthetic HW3-format data: mmcell's pipeline (cached RLE) vs a naive
one (a full-image bitmap per instance), and the parse cache's first vs second launch. Prints a section and appends
it to ``--results`` (default benchmarks/RESULTS.md; ``--no-append``: print only).

Usage::

    python benchmarks/training_pipeline.py [--images 20 --size 512 --density 4 --passes 3]

Pipelines timed in the same run, single process (= one dataloader worker), on synthetic ``size`` x ``size``
images with ~300 nuclei:

- mmcell: ``CellInstanceDataset`` (parsed RLE from the cache) + ``LoadCellImage`` + ``LoadCellAnnotations`` +
  flips + ``PackDetInputs``;
- naive: the same image loading, but the class maps read at every step and one full-image ``cmap == id`` bitmap per
  instance (what a dataset without a parse step does), + the same flips and packing.
"""
from __future__ import annotations

import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from mmdet.datasets.transforms import PackDetInputs, RandomFlip
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from mmcell.datasets import CellInstanceDataset
from mmcell.datasets.hw3_annotations import load_train_annotations
from mmcell.datasets.hw3_format import find_class_files, read_class_map
from mmcell.datasets.transforms import LoadCellAnnotations, LoadCellImage
from mmcell.synthetic.hw3 import make_synthetic_hw3
from mmcell.utils.errors import ToolArgumentParser
from mmcell.utils.fileio import write_results_section

REPO = Path(__file__).resolve().parents[1]


class NaiveLoadAnnotations:
    """Per-step parsing: read every class map, one full-image bitmap per distinct id (the path mmcell replaces)."""

    def __call__(self, results: dict) -> dict:
        masks, boxes, labels = [], [], []
        for k, path in find_class_files(Path(results['img_path']).parent).items():
            cmap = read_class_map(path)
            for value in np.unique(cmap[cmap != 0]):
                mask = cmap == value
                ys, xs = np.nonzero(mask)
                masks.append(mask.astype(np.uint8))
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                labels.append(k - 1)
        h, w = results['img_shape']
        results['gt_masks'] = BitmapMasks(np.stack(masks) if masks else np.zeros((0, h, w), np.uint8), h, w)
        results['gt_bboxes'] = HorizontalBoxes(np.array(boxes, np.float32).reshape(-1, 4))
        results['gt_bboxes_labels'] = np.array(labels, np.int64)
        results['gt_ignore_flags'] = np.zeros(len(labels), bool)
        return results


def _tail():
    return [RandomFlip(prob=0.5, direction='horizontal'), RandomFlip(prob=0.5, direction='vertical'),
            PackDetInputs()]


def time_pipeline(dataset: CellInstanceDataset, passes: int) -> float:
    """Images per second through ``dataset[i]`` over ``passes`` epochs (after one warm-up image)."""
    dataset[0]
    start = time.perf_counter()
    for _ in range(passes):
        for i in range(len(dataset)):
            dataset[i]
    return passes * len(dataset) / (time.perf_counter() - start)


def main() -> None:
    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=20)
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--density', type=float, default=4.0, help='nuclei density multiplier (4: ~370 at 512)')
    parser.add_argument('--passes', type=int, default=3)
    parser.add_argument('--results', default=str(REPO / 'benchmarks' / 'RESULTS.md'))
    parser.add_argument('--no-append', action='store_true')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_hw3(Path(tmp) / 'data', num_train=args.images, num_test=0, seed=0,
                                  min_size=args.size, max_size=args.size, density=args.density, progress=True)
        cache = Path(tmp) / 'cache.json'
        t0 = time.perf_counter()
        samples = load_train_annotations(root, cache_file=cache, progress=False)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        stats = {}
        load_train_annotations(root, cache_file=cache, progress=False, stats=stats)
        second = time.perf_counter() - t0
        assert stats['parsed'] == 0, stats
        n_inst = np.array([len(s['instances']) for s in samples])

        common = dict(data_root=str(root), split='all', cache_file=str(cache))
        fast = CellInstanceDataset(pipeline=[LoadCellImage(), LoadCellAnnotations(with_bbox=True, with_mask=True),
                                             *_tail()], **common)
        naive = CellInstanceDataset(pipeline=[LoadCellImage(), NaiveLoadAnnotations(), *_tail()], **common)
        fast_ips = time_pipeline(fast, args.passes)
        naive_ips = time_pipeline(naive, args.passes)

    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    command = (f'.venv/bin/python benchmarks/training_pipeline.py --images {args.images} --size '
               f'{args.size} --density {args.density:g} --passes {args.passes}')
    text = '\n'.join([
        f'## Training pipeline throughput and parse cache ({datetime.date.today().isoformat()})',
        f'- machine: 2-core CPU dev box, no GPU ({platform.processor() or platform.machine()}; shared, '
        f'load average {load:.1f} at the end of the run); one process = one dataloader worker',
        f'- command: `{command}`',
        f'- data: {args.images} synthetic {args.size}x{args.size} images, instances per image min {n_inst.min()} / '
        f'mean {n_inst.mean():.0f} / max {n_inst.max()}',
        '',
        '| pipeline (load + decode + annotations + 2 flips + pack) | images/s |',
        '|---|---|',
        f'| mmcell (cached RLE, LoadCellAnnotations) | {fast_ips:.1f} |',
        f'| naive (class maps + one full-image `cmap == id` mask per instance, every step) | {naive_ips:.1f} |',
        f'| ratio | {fast_ips / naive_ips:.1f}x |',
        '',
        f'- annotation parsing of the {args.images} folders: first launch {first:.2f} s, second launch (cache hit) '
        f'{second:.3f} s', ''])
    print(text)
    if not args.no_append:
        write_results_section(args.results, text)
        print(f'wrote its section of {args.results}')


if __name__ == '__main__':
    main()
