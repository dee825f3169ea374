"""Write a synthetic H&E nuclei data set in the exact HW3 contest layout (plus the test split's COCO ground truth).

Usage::

    python tools/dataset_converters/make_synthetic_hw3.py OUT --num-train N --num-test M --seed S
"""
from __future__ import annotations

import argparse
import json

from mmcell.synthetic.hw3 import make_synthetic_hw3
from mmcell.utils.errors import ToolArgumentParser, one_line


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='synthetic HW3 data set (train/, test_release/, ids json)')
    parser.add_argument('out', help='data root to create')
    parser.add_argument('--num-train', type=int, default=20, help='training folders')
    parser.add_argument('--num-test', type=int, default=5, help='test images')
    parser.add_argument('--seed', type=int, default=0, help='random seed (same seed, same files)')
    parser.add_argument('--min-size', type=int, default=80, help='smallest image side (px)')
    parser.add_argument('--max-size', type=int, default=1500, help='largest image side (px)')
    parser.add_argument('--density', type=float, default=1.0, help='multiplier of nuclei per image')
    parser.add_argument('--keep-border', action='store_true', help='annotate nuclei cut by the image border')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.num_train < 0 or args.num_test < 0:
        raise SystemExit(f'{args.out}: --num-train and --num-test must be >= 0')
    try:
        root = make_synthetic_hw3(args.out, num_train=args.num_train, num_test=args.num_test, seed=args.seed,
                                  min_size=args.min_size, max_size=args.max_size, keep_border=args.keep_border,
                                  density=args.density, progress=True)
    except (ValueError, OSError) as err:
        raise SystemExit(f'{args.out}: {one_line(err)}') from None
    summary = f'{root}: {args.num_train} train folders, {args.num_test} test images'
    if args.num_test:
        n_test_inst = len(json.loads((root / 'test_gt_coco.json').read_text())['annotations'])
        summary += f' ({n_test_inst} test instances in test_gt_coco.json)'
    print(f'{summary}, seed {args.seed}')


if __name__ == '__main__':
    main()
