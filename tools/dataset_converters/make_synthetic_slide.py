"""Write a synthetic whole-slide image (pyramidal OME-TIFF, JPEG tiles, tissue on glass) and its ground truth.

    python tools/dataset_converters/make_synthetic_slide.py OUT.ome.tif --size 20000 --mpp 0.25 [--seed 0]
        [--tissue-fraction 0.35 | --tissue-mm2 2.0] [--height H] [--no-ground-truth]

Ground truth (uint32 instance ids + class map, as ``segment-slide``'s labels.ome.tif) goes to OUT_gt.ome.tif.
"""
from __future__ import annotations

import argparse

from mmcell.synthetic.slide import write_synthetic_slide
from mmcell.utils.errors import ToolArgumentParser, one_line


def main(argv=None) -> None:
    parser = ToolArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out', help='output slide (.ome.tif)')
    parser.add_argument('--size', type=int, default=20000, help='level-0 width (and height unless --height)')
    parser.add_argument('--height', type=int, help='level-0 height (default: --size)')
    parser.add_argument('--mpp', type=float, default=0.25, help='microns per pixel')
    parser.add_argument('--seed', type=int, default=0)
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--tissue-fraction', type=float, default=0.35, help='share of the slide covered by tissue')
    group.add_argument('--tissue-mm2', type=float, help='tissue area in mm^2 (same work for any slide size)')
    parser.add_argument('--no-ground-truth', action='store_true', help='do not write OUT_gt.ome.tif')
    args = parser.parse_args(argv)
    try:
        info = write_synthetic_slide(args.out, (args.size, args.height or args.size), mpp=args.mpp, seed=args.seed,
                                     tissue_fraction=args.tissue_fraction, tissue_mm2=args.tissue_mm2,
                                     ground_truth=not args.no_ground_truth, progress=True)
    except ValueError as err:
        raise SystemExit(f'{args.out}: {one_line(err)}') from None
    print(f'{info["slide"]}: {info["width"]} x {info["height"]} px at {info["mpp"]} um/px, '
          f'{info["tissue_mm2"]:.2f} mm2 tissue, {info["cells"]} nuclei'
          + (f'; ground truth {info["ground_truth"]}' if info['ground_truth'] else ''))


if __name__ == '__main__':
    main()
