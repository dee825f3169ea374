"""The ``mmcell`` console command (declared in pyproject.toml as ``mmcell = mmcell.cli:main``).

    mmcell segment IMAGES... --config CFG --checkpoint CKPT --out DIR [--score-thr 0.5] [--tta] [--tile 1024]

writes, per image, ``<stem>_labels.tif`` (uint16 instance labels, 0 = background), ``<stem>_classes.tif``
(class id per pixel) and ``<stem>_cells.csv`` (id, class, score, area, centroid, bbox, mean intensity).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def _segment_parser(sub) -> None:
    p = sub.add_parser('segment', help='label images and cell tables for microscopy images',
                       description='Segment cells: label image, class map and cell table per image')
    p.add_argument('images', nargs='+', help='image files or folders')
    p.add_argument('--config', required=True, help='mmcell model config')
    p.add_argument('--checkpoint', required=True, help='trained weights (.pth)')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--device', default='cpu', help='cpu or cuda:0')
    p.add_argument('--score-thr', type=float, default=0.5, help='leave out instances scoring below this')
    p.add_argument('--tta', action='store_true', help='test-time augmentation (flips, --tta-scales)')
    p.add_argument('--tta-scales', type=float, nargs='+', default=[1.0], help='TTA scale multipliers')
    p.add_argument('--tile', type=int, help='tiled inference with this tile size (network-input pixels)')
    p.add_argument('--tile-overlap', type=int, help='overlap between tiles (default min(128, tile/4))')
    p.add_argument('--no-fast', action='store_true', help="use mmdet's own inference modules")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog='mmcell', description='mmcell: cell instance segmentation')
    sub = parser.add_subparsers(dest='command', required=True)
    _segment_parser(sub)
    args = parser.parse_args(argv)
    if args.command == 'segment':
        from mmcell.apis.segment import segment

        kwargs = dict(tta_scales=args.tta_scales) if args.tta else {}
        if args.tile and args.tile_overlap is not None:
            kwargs['tile_overlap'] = args.tile_overlap
        try:
            results = segment(args.images, args.config, args.checkpoint, out_dir=args.out, device=args.device,
                              score_thr=args.score_thr, tta=args.tta, tile=args.tile, fast=not args.no_fast,
                              **kwargs)
        except (ValueError, FileNotFoundError) as err:
            raise SystemExit(str(err)) from None
        print(f'{len(results)} image(s), {sum(len(r.table) for r in results)} cells -> {args.out}')


if __name__ == '__main__':
    main(sys.argv[1:])
