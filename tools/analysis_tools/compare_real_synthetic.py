"""Real vs synthetic H&E, measured the same way: nuclei per mm^2, area in um^2, crowding, HED stains, blur, noise.

    python tools/analysis_tools/compare_real_synthetic.py REAL_ROOT SYN_ROOT [--mpp 0.25] [--syn-mpp MPP]

Both roots are in the HW3 layout (``train/<name>/image.tif`` + ``class<K>.tif``; every class counts as a nucleus),
e.g. MoNuSeg converted with ``tools/dataset_converters/to_hw3.py --format monuseg`` and a set drawn by
``tools/dataset_converters/make_synthetic_hw3.py``. Prints a Markdown table, one column per root
(:func:`mmcell.datasets.statistics.tissue_statistics`); this is how the synthetic generator was calibrated.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmcell.utils.errors import ToolArgumentParser, exit_on_bad_input


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='real vs synthetic tissue statistics (Markdown table)')
    parser.add_argument('real_root', help='HW3-layout root of real images')
    parser.add_argument('syn_root', help='HW3-layout root of synthetic images')
    parser.add_argument('--mpp', type=float, default=0.25, help='microns per pixel of the real images (40x: ~0.25)')
    parser.add_argument('--syn-mpp', type=float, help='microns per pixel of the synthetic images (default: --mpp)')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from mmcell.datasets.hw3_annotations import load_train_annotations
    from mmcell.datasets.statistics import format_tissue_comparison, tissue_statistics

    columns = {}
    for root, mpp in ((args.real_root, args.mpp), (args.syn_root, args.syn_mpp or args.mpp)):
        name = f'{Path(root).resolve().name} ({mpp:g} um/px)'
        samples = exit_on_bad_input(load_train_annotations, root)
        columns[name] = exit_on_bad_input(tissue_statistics, samples, mpp, progress=True)
    print(format_tissue_comparison(columns))


if __name__ == '__main__':
    main()
