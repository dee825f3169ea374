"""Train a detector with an mmcell config (mmdet's tools/train.py flags, plus --data-root and --extra-train).

``--extra-train EXTRA_ROOT`` (repeatable; an HW3 data root, e.g. the synthetic generator's) joins the config's
training set, never its validation samples, exactly as in the cross-validation protocol
(:func:`mmcell.datasets.extra_train.train_config_with_extra`: one ConcatDataset, the pool drawn by pixel area).
"""
from __future__ import annotations

import argparse
import os.path as osp

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmcell.datasets.extra_train import train_config_with_extra
from mmcell.utils import (
    ToolArgumentParser,
    add_runner_args,
    exit_on_bad_input,
    input_errors,
    load_runner_config,
    one_line,
    prepare_launch,
)


def parse_args(argv: list | None = None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--precision', choices=['auto', 'fp32', 'bf16'],
                        help="fp32, bf16 (autocast, float32 losses; CPU) or auto (bf16 where the CPU has native "
                             "bfloat16 units); default: the config's precision key, else fp32")
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: float16 AmpOptimWrapper on CUDA, --precision bf16 on a CPU')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the LR by the total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or without a path from the latest in the work dir')
    parser.add_argument('--extra-train', metavar='EXTRA_ROOT', action='append', default=[],
                        help='HW3 data root whose samples join the training set whole (never validated on; the '
                        'pool drawn by pixel area); repeat for several')
    return add_runner_args(parser).parse_args(argv)


def main(argv: list | None = None) -> None:
    args = parse_args(argv)
    cfg = load_runner_config(args)
    if args.extra_train:
        cfg = exit_on_bad_input(train_config_with_extra, cfg, args.extra_train)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise SystemExit(f'{args.config}: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    load_from = cfg.get('load_from')
    if load_from and '://' not in str(load_from) and not osp.isfile(load_from):
        raise SystemExit(f'{load_from}: checkpoint file not found')
    if load_from and not cfg.get('resume'):
        # mmengine loads what fits (a head of another class count is expected); say what it skipped
        cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='LoadFromReportHook')]
    prepare_launch(cfg, args.launcher, amp=args.amp, precision=args.precision)

    try:
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        runner.train()
    except input_errors() as err:  # data files, load_from / --resume checkpoints, output folders
        raise SystemExit(one_line(err)) from None


if __name__ == '__main__':
    main()
