"""Organ-grouped K-fold cross-validation of a config on labelled tiles (the protocol of issue 19).

    python tools/analysis_tools/cross_validate.py CONFIG DATA_ROOT WORK [--folds 4] [--iters N]
        [--test-scales 1.25 1.0] [--mask-thrs 0.4 0.5] [--only-folds 0 1] [--seed 0] [--cfg-options k=v ...]
        [--results-dir benchmarks/results/monuseg_cv/TAG] [--extra-train EXTRA_ROOT ...]
    python tools/analysis_tools/cross_validate.py --compare benchmarks/results/monuseg_cv --reference TAG
        [--setting 'test 1.25x, mask thr 0.4']

Trains CONFIG once per fold on every tile of DATA_ROOT (HW3 layout, e.g. MoNuSeg converted with
``to_hw3.py --format monuseg``) but the fold's held-out organ(s), scores each model on its held-out tiles at every
test setting (AP50 / AP at maxDets 1000, AJI, AJI+, PQ at score >= 0.5; a multi-class model also the class-aware
contest AP50 at maxDets 100 and 1000, the AP50 of each class, mPQ and the PQ of each class) and writes
WORK/cv_summary.json and WORK/cv_summary.md (mean ± std per figure over the folds, paired differences between
settings, one row per fold).
``--iters`` is the screening schedule (the config's schedule compressed to N iterations). Folds already done
(WORK/fold<k>/figures.json, or RESULTS/fold<k>.json with ``--results-dir``: small files to commit) are kept: run
a few folds at a time with ``--only-folds``. A kept fold asked for a test setting its file lacks (``--test-scales``,
``--mask-thrs``) is scored at it from its checkpoint (``WORK/fold<k>/iter_<N>.pth``) without training again: a
test setting chosen after the folds ran is compared on the same models.
``--extra-train EXTRA_ROOT`` (repeatable; an HW3 data root, e.g. CoNSeP converted with ``to_hw3.py --format
consep``) joins every fold's training set, never its held-out tiles: more data, scored on DATA_ROOT's folds only
(the pool drawn by pixel area; recorded in each fold file).

``--compare ROOT`` trains nothing: it reads the fold files of every run under ROOT (one folder per config and
schedule) and writes ROOT/summary.md and summary.json: each config's mean ± std and its paired difference to the
``--reference`` config over the folds both have done.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from mmengine.config import DictAction

from mmcell.utils import ToolArgumentParser, exit_on_bad_input, probability


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Organ-grouped K-fold cross-validation of a config (mean ± std)')
    parser.add_argument('config', nargs='?',
                        help='the recipe config (with a fixed val_names split, e.g. configs/monuseg/*)')
    parser.add_argument('data_root', nargs='?', help='HW3-layout data (train/<name>/image.tif + class<K>.tif)')
    parser.add_argument('work_dir', nargs='?', help='folds, checkpoints, logs and the summary go here')
    parser.add_argument('--folds', type=int, default=4, help='K (default 4: breast | kidney | lung | prostate+colon)')
    parser.add_argument('--iters', type=int, help="screening schedule: this many iterations (default: the config's)")
    parser.add_argument('--test-scales', type=float, nargs='+', help="test resizes to score (default: the config's)")
    parser.add_argument('--mask-thrs', type=probability, nargs='+',
                        help="mask thresholds to score (default: the config's)")
    parser.add_argument('--only-folds', type=int, nargs='+', help='run only these folds now (the rest later)')
    parser.add_argument('--seed', type=int, default=0, help='training seed (default 0)')
    parser.add_argument('--title', help='heading of the Markdown summary')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    parser.add_argument('--results-dir', help='write / keep the fold files (fold<k>.json), folds.json and the summary '
                        'here (e.g. benchmarks/results/monuseg_cv/TAG, committed); checkpoints stay in WORK')
    parser.add_argument('--extra-train', metavar='EXTRA_ROOT', action='append', default=[],
                        help='HW3 data root whose samples join every fold\'s training set (never scored); '
                        'repeat for several')
    parser.add_argument('--compare', metavar='ROOT',
                        help='train nothing: compare the runs under ROOT (one folder of fold files per config)')
    parser.add_argument('--reference', help='with --compare: the folder name of the config the others pair with')
    parser.add_argument('--setting', help="with --compare: the test setting compared (default: the reference's first)")
    args = parser.parse_args(argv)
    if args.compare:
        if not args.reference or args.config:
            parser.error('--compare ROOT needs --reference TAG and no CONFIG DATA_ROOT WORK')
    elif not args.work_dir:
        parser.error('CONFIG DATA_ROOT WORK are required (or --compare ROOT --reference TAG)')
    return args


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    from mmcell.apis.crossval import comparison_markdown, cross_validate

    if args.compare:
        print(exit_on_bad_input(comparison_markdown, args.compare, args.reference, args.setting))
        return
    summary = exit_on_bad_input(
        cross_validate, args.config, args.data_root, args.work_dir, num_folds=args.folds, iters=args.iters,
        test_scales=args.test_scales or (None, ), mask_thrs=args.mask_thrs or (None, ), only_folds=args.only_folds,
        cfg_options=args.cfg_options, seed=args.seed, title=args.title, results_dir=args.results_dir,
        extra_train=args.extra_train)
    print('\n' + (Path(args.results_dir or args.work_dir) / 'cv_summary.md').read_text())
    print(f'folds done: {summary["folds_done"]} of {summary["num_folds"]}')


if __name__ == '__main__':
    main()
