"""The ``mmcell`` console command (declared in pyproject.toml as ``mmcell = mmcell.cli:main``).

    mmcell segment IMAGES... --config CFG --checkpoint CKPT --out DIR [--score-thr 0.5] [--tta] [--tile 1024]

writes, per image, ``<stem>_labels.tif`` (uint16 instance labels, 0 = background), ``<stem>_classes.tif``
(class id per pixel) and ``<stem>_cells.csv`` (id, class, score, area, centroid, bbox, mean intensity).
Each subcommand is argparse plus one call into :mod:`mmcell.apis`; bad input exits with one line.
"""
from __future__ import annotations

import sys
from typing import List, Optional


def _segment_parser(sub) -> None:
    from mmcell.apis.inference import add_model_args

    p = sub.add_parser('segment', help='label images and cell tables for microscopy images',
                       description='Segment cells: label image, class map and cell table per image')
    p.add_argument('images', nargs='+', help='image files or folders')
    p.add_argument('--config', required=True, help='mmcell model config')
    p.add_argument('--checkpoint', required=True, help='trained weights (.pth)')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--score-thr', type=float,
                   help='leave out instances scoring below this (default 0.5: label images are read by people)')
    add_model_args(p)


def _segment(args) -> None:
    from mmcell.apis.inference import model_kwargs_of
    from mmcell.apis.segment import segment
    from mmcell.utils import exit_on_bad_input

    results = exit_on_bad_input(segment, args.images, args.config, args.checkpoint, out_dir=args.out,
                                score_thr=args.score_thr, **model_kwargs_of(args))
    print(f'{len(results)} image(s), {sum(len(r.table) for r in results)} cells -> {args.out}')


def main(argv: Optional[List[str]] = None) -> None:
    from mmcell.utils import ToolArgumentParser

    parser = ToolArgumentParser(prog='mmcell', description='mmcell: cell instance segmentation')
    sub = parser.add_subparsers(dest='command', required=True)
    _segment_parser(sub)
    args = parser.parse_args(argv)
    if args.command == 'segment':
        _segment(args)


if __name__ == '__main__':
    main(sys.argv[1:])
