"""Statistics of an HW3 training set: images, sizes, instances per class, instance sizes, border-touching GT.

Usage::

    python tools/analysis_tools/dataset_stats.py DATA_ROOT [--out DIR]

Prints a table and saves ``DIR/dataset_stats.png`` (image sizes, instances per class, instance-area histogram,
fraction of GT instances touching the image border: the observation behind the border filter).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmcell.datasets.hw3_annotations import load_train_annotations
from mmcell.datasets.statistics import dataset_statistics, format_statistics
from mmcell.utils.errors import ToolArgumentParser, exit_on_bad_input
from mmcell.visualization.plots import plot_statistics


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='HW3 data set statistics (table + PNG plots)')
    parser.add_argument('data_root', help='the HW3 release folder (holding train/)')
    parser.add_argument('--out', default='work_dirs/dataset_stats', help='folder for dataset_stats.png')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    stats = exit_on_bad_input(dataset_statistics, exit_on_bad_input(load_train_annotations, args.data_root))
    png = exit_on_bad_input(plot_statistics, stats, Path(args.out) / 'dataset_stats.png')
    print(format_statistics(stats))
    print(f'plots: {png}')


if __name__ == '__main__':
    main()
