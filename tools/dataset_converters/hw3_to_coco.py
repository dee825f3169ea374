"""Convert the training folders of an HW3 release to COCO instance json (RLE segmentations, categories 1..4).

Usage::

    python tools/dataset_converters/hw3_to_coco.py DATA_ROOT --out OUT.json [--val-ratio R --seed S]

With ``--val-ratio 0`` (the default) every image goes to OUT.json; otherwise OUT_train.json and OUT_val.json are
written with the same seeded split as ``CellInstanceDataset``.
"""
from __future__ import annotations

import argparse
import json

from mmcell.datasets.converters.hw3_coco import hw3_to_coco
from mmcell.utils.errors import ToolArgumentParser, exit_on_bad_input


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='HW3 train/ folders -> COCO instance json (RLE)')
    parser.add_argument('data_root', help='the HW3 release folder (holding train/)')
    parser.add_argument('--out', required=True, help='output OUT.json')
    parser.add_argument('--val-ratio', type=float, default=0.0, help='validation fraction (0: one file)')
    parser.add_argument('--seed', type=int, default=0, help='split seed')
    parser.add_argument('--split-file', default=None, help='explicit split (.txt of val folders or .json)')
    parser.add_argument('--no-cache', action='store_true', help='do not read or write the parse cache')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    written = exit_on_bad_input(hw3_to_coco, args.data_root, args.out, val_ratio=args.val_ratio, seed=args.seed,
                                split_file=args.split_file, cache_file=None if args.no_cache else 'auto')
    for path in written:
        coco = json.loads(path.read_text())
        per_class = {c['id']: 0 for c in coco['categories']}
        for ann in coco['annotations']:
            per_class[ann['category_id']] += 1
        counts = ', '.join(f'class{k} {n}' for k, n in per_class.items())
        print(f'{path}: {len(coco["images"])} images, {len(coco["annotations"])} instances ({counts})')


if __name__ == '__main__':
    main()
