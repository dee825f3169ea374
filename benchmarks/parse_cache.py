"""Parse-cache timing on a contest-sized synthetic data set: first launch (parse every folder) vs second (cache
hit). Prints the two times; writes no results file (copy the lines into benchmarks/RESULTS.md by hand). The data
set is drawn under ``--root`` unless it already holds one.

Usage::

    python benchmarks/parse_cache.py [--root /tmp/syn209/hw3-data-release --num-train 209]

Draws a synthetic HW3 release of ``--num-train`` images (contest-like sizes, 80-1500 px) unless ``--root`` already
holds one, deletes its parse cache, then times :func:`load_train_annotations` twice.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from mmcell.datasets.hw3_annotations import CACHE_DIR_NAME, load_train_annotations
from mmcell.synthetic.hw3 import make_synthetic_hw3
from mmcell.utils.errors import ToolArgumentParser


def main() -> None:
    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', default='/tmp/syn209/hw3-data-release')
    parser.add_argument('--num-train', type=int, default=209)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    root = Path(args.root)
    if not (root / 'train').is_dir():
        start = time.perf_counter()
        make_synthetic_hw3(root, num_train=args.num_train, num_test=1, seed=args.seed)
        print(f'generated {args.num_train} images in {time.perf_counter() - start:.1f} s')
    shutil.rmtree(root / CACHE_DIR_NAME, ignore_errors=True)
    for launch in ('first', 'second'):
        stats: dict = {}
        start = time.perf_counter()
        samples = load_train_annotations(root, progress=False, stats=stats)
        seconds = time.perf_counter() - start
        counts = [len(s['instances']) for s in samples]
        print(f'{launch} launch: {seconds:.3f} s (parsed {stats["parsed"]}, from cache {stats["cached"]}; '
              f'{sum(counts)} instances, up to {max(counts)} per image)')


if __name__ == '__main__':
    main()
