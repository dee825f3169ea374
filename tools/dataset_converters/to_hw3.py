"""Convert a public nucleus data set to the HW3 layout (``OUT/train/<stem>/image.tif`` + ``class<K>.tif``).

Usage::

    python tools/dataset_converters/to_hw3.py --format FORMAT SRC OUT [--class-map KEY=K ...] [--test-release]
        [--overwrite] [--region-class Region] [--reader auto|tiffslide|openslide] [--mpp M]
        [--consep-types merged|original]

FORMAT: monuseg, monusac, pannuke, conic, dsb2018, labels, qupath, consep (see ``mmcell.datasets.converters`` for the
layouts, the default class maps, the rasterisation and the overlap rule). Each image prints one summary line; OUT is
written to a temp folder and renamed at the end, so a failed run leaves nothing half-written.
"""
from __future__ import annotations

import argparse

from mmcell.datasets.converters.consep import TYPE_SCHEMES
from mmcell.datasets.converters.convert import FORMATS, convert_to_hw3
from mmcell.datasets.slide.reader import READERS
from mmcell.utils.errors import ToolArgumentParser, exit_on_bad_input


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='public nucleus data set -> HW3 layout')
    parser.add_argument('--format', required=True, metavar='FORMAT', help=f'one of {", ".join(FORMATS)}')
    parser.add_argument('src', help='source folder (images and annotations are matched by stem below it)')
    parser.add_argument('out', help='output data root (must not exist, unless --overwrite)')
    parser.add_argument('--class-map', nargs='+', metavar='KEY=K', default=None,
                        help='remap source classes (name or source id) to class<K>.tif; K=0 drops the class')
    parser.add_argument('--test-release', action='store_true',
                        help='also write test_release/<stem>.tif, test_image_name_to_ids.json, test_gt_coco.json')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing OUT')
    parser.add_argument('--region-class', metavar='NAME', default=None,
                        help='qupath: annotations whose class starts with NAME are the annotated regions (default '
                             'Region)')
    parser.add_argument('--reader', choices=READERS, default=None,
                        help='qupath: slide backend (default auto: by what opens the file)')
    parser.add_argument('--mpp', type=float, default=None,
                        help='qupath: cut the regions at this many microns per pixel (default: level 0)')
    parser.add_argument('--consep-types', choices=TYPE_SCHEMES, default=None,
                        help="consep: merged (default: types 1..4 are CoNSeP's merged classes other, inflammatory, "
                             'epithelial, spindle) or original (the 7 release types, merged by HoVer-Net\'s rule)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    report = exit_on_bad_input(convert_to_hw3, args.format, args.src, args.out, class_map=args.class_map,
                               test_release=args.test_release, overwrite=args.overwrite,
                               progress=not args.no_progress, region_class=args.region_class, reader=args.reader,
                               mpp=args.mpp, consep_types=args.consep_types)
    print(report.summary())
    names = ', '.join(repr(n) for n in report.class_names)
    print(f'config: metainfo=dict(classes=({names},)), num_classes={len(report.class_names)}')


if __name__ == '__main__':
    main()
