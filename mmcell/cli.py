"""The ``mmcell`` console command (declared in pyproject.toml as ``mmcell = mmcell.cli:main``).

    mmcell segment IMAGES... --config CFG --checkpoint CKPT --out DIR [--score-thr 0.5] [--tta] [--tile 1024]
    mmcell segment-slide SLIDES... --config CFG --checkpoint CKPT --out DIR [--mpp M] [--region X Y W H] [--shard I/N]
                         [--reader auto|tiffslide|openslide] [--tta] [--no-fast]
    mmcell merge-slide DIR/<stem>

``segment`` writes, per image, ``<stem>_labels.tif`` (uint16 instance labels, 0 = background), ``<stem>_classes.tif``
(class id per pixel) and ``<stem>_cells.csv`` (id, class, score, area, centroid, bbox, mean intensity).
Each subcommand is argparse plus one call into :mod:`mmcell.apis`; all share the model flags
(:func:`mmcell.apis.add_model_args`) and bad input exits with one line (:func:`mmcell.utils.exit_on_bad_input`).
``segment-slide`` writes, per slide, ``DIR/<stem>/`` with ``cells.geojson.gz`` (QuPath), ``cells.csv.gz``,
``labels.ome.tif`` and ``preview.png`` (see :mod:`mmcell.apis.slide`).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from mmcell.apis import add_model_args, merge_slide, model_kwargs_of, segment, segment_slide
from mmcell.datasets.slide.reader import READERS
from mmcell.evaluation.submission import LABEL_SCORE_THR
from mmcell.exporters.cells import REVIEW_MARGIN
from mmcell.utils import ToolArgumentParser, exit_on_bad_input, probability


def _segment_parser(sub) -> None:
    p = sub.add_parser('segment', help='label images and cell tables for microscopy images',
                       description='Segment cells: label image, class map and cell table per image')
    p.add_argument('images', nargs='+', help='image files or folders')
    p.add_argument('--config', required=True, help='mmcell model config')
    p.add_argument('--checkpoint', required=True, help='trained weights (.pth)')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--score-thr', type=probability,
                   help='leave out instances scoring below this (default 0.5: label images are read by people)')
    p.add_argument('--mpp', type=float,
                   help='microns per pixel of the images: measurements in µm (Nucleus: Area µm^2 ...), else in px')
    add_model_args(p)


def _segment(args) -> None:
    results = exit_on_bad_input(segment, args.images, args.config, args.checkpoint, out_dir=args.out,
                                score_thr=args.score_thr, mpp=args.mpp, **model_kwargs_of(args))
    print(f'{len(results)} image(s), {sum(len(r.table) for r in results)} cells -> {args.out}')


def _segment_slide_parser(sub) -> None:
    p = sub.add_parser('segment-slide', help='whole-slide images -> QuPath GeoJSON, cell table, label OME-TIFF',
                       description='Segment every nucleus of whole-slide images (SVS, OME-TIFF, tiled TIFF, NDPI, '
                                   'MRXS, SCN, Philips TIFF, VMS, BIF, PNG) '
                                   'into OUT/<stem>/: cells.geojson.gz, cells.csv.gz, labels.ome.tif, preview.png. '
                                   'Resumable (run the same command again), distributed (torchrun or --shard).')
    p.add_argument('slides', nargs='+', help='slide files')
    p.add_argument('--config', required=True, help='mmcell model config (its model_mpp: the training resolution)')
    p.add_argument('--checkpoint', required=True, help='trained weights (.pth)')
    p.add_argument('--out', required=True, help='output folder (one sub-folder per slide)')
    p.add_argument('--mpp', type=float, help='microns per level-0 pixel (overrides the slide metadata)')
    p.add_argument('--reader', choices=READERS, default='auto',
                   help='slide backend: auto (by what opens the file), tiffslide (SVS, OME-TIFF, tiled TIFF) or '
                        'openslide (NDPI, MRXS, SCN, Philips TIFF, VMS/VMU, BIF, SVS)')
    p.add_argument('--tile', type=int, default=1024, help='tile side at the model resolution (px)')
    p.add_argument('--overlap', type=int, default=128, help='tile overlap (px, >= twice the largest nucleus)')
    p.add_argument('--batch-size', type=int, help='tiles per forward pass (default 2 on CPU, 8 on GPU)')
    p.add_argument('--workers', type=int, help='DataLoader workers reading tiles (default 1)')
    p.add_argument('--score-thr', type=probability, help='leave out cells scoring below this (default 0.5)')
    p.add_argument('--region', type=int, nargs=4, metavar=('X', 'Y', 'W', 'H'),
                   help='only this level-0 rectangle (outputs keep slide coordinates)')
    p.add_argument('--shard', help='I/N: do every N-th tile from the I-th (SLURM arrays), then mmcell merge-slide')
    p.add_argument('--overwrite', action='store_true', help='redo finished slides, discard unfinished other work')
    p.add_argument('--review-below', type=probability, metavar='S',
                   help='also write review.geojson: the cells scoring below S (with a --score-thr below S) and the '
                        'cells whose class is uncertain (--review-margin) as QuPath annotations to correct, each '
                        'named for why')
    p.add_argument('--review-margin', type=probability, metavar='M', default=REVIEW_MARGIN,
                   help='with --review-below: also the cells whose class score leads the next class by less than M '
                        f'(models of several classes; default {REVIEW_MARGIN}, 0 = by score only). A score s implies '
                        'a margin of at least 2s - 1: M adds cells beyond the low scorers only above 2S - 1')
    p.add_argument('--detections', action='store_true',
                   help='also write detections.json.gz: every detection the model returns, its own mask (overlaps '
                        'kept), as tools/predict.py writes them for tiles: to score a slide by AP')
    add_model_args(p, tiling=False)


def _merge_slide_parser(sub) -> None:
    p = sub.add_parser('merge-slide', help='write the final files of a slide segmented by --shard jobs',
                       description='Merge the finished tiles of OUT/<stem>/.work into the final files')
    p.add_argument('slide_dirs', nargs='+', help='OUT/<stem> folders')


def _run_segment_slide(args: argparse.Namespace) -> None:
    results = exit_on_bad_input(
        segment_slide, args.slides, args.config, args.checkpoint, args.out, mpp=args.mpp, tile=args.tile,
        overlap=args.overlap, batch_size=args.batch_size,
        score_thr=LABEL_SCORE_THR if args.score_thr is None else args.score_thr, region=args.region,
        shard=args.shard, overwrite=args.overwrite, num_workers=args.workers, reader=args.reader,
        review_below=args.review_below, review_margin=args.review_margin or None, detections=args.detections,
        **model_kwargs_of(args))
    done = [r for r in results if r.status == 'done']
    if done:
        print(f'{len(done)} slide(s), {sum(r.cells for r in done)} cells, '
              f'{sum(r.tissue_mm2 for r in done):.3f} mm2 tissue -> {args.out}')


def main(argv: Optional[List[str]] = None) -> None:
    parser = ToolArgumentParser(prog='mmcell', description='mmcell: cell instance segmentation')
    sub = parser.add_subparsers(dest='command', required=True)
    _segment_parser(sub)
    _segment_slide_parser(sub)
    _merge_slide_parser(sub)
    args = parser.parse_args(argv)
    if args.command == 'segment':
        _segment(args)
    elif args.command == 'segment-slide':
        _run_segment_slide(args)
    else:
        for slide_dir in args.slide_dirs:
            result = exit_on_bad_input(merge_slide, slide_dir)
            print(f'{slide_dir}: {result.cells} cells')


if __name__ == '__main__':
    main(sys.argv[1:])
