"""Test (and evaluate) a checkpoint with an mmcell config (mmdet's tools/test.py flags).

The model is the one every mmcell tool predicts with (``mmcell.apis.inference_config``): fast CPU modules by
default (``--no-fast``: mmdet's own), ``--tta`` / ``--tile`` or a config whose ``model`` is a ``CellTTAModel`` /
``TiledDetector`` wrap it. The checkpoint is checked before the test loop (one line, never random weights).
With ``CellPathologyMetric`` on a data set of several classes, the class confusion of matched nuclei is also
written to the run's log folder (``class_confusion.png`` and ``.md``).
"""
from __future__ import annotations

import argparse
import os.path as osp

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmcell.apis.builder import add_model_args, apply_engine, inference_config, model_kwargs_of
from mmcell.utils import (
    ToolArgumentParser,
    add_runner_args,
    exit_on_bad_input,
    input_errors,
    load_runner_config,
    one_line,
    prepare_launch,
)
from mmcell.utils.checkpoint import load_inference_checkpoint
from mmcell.visualization import save_confusion


def parse_args(argv: list | None = None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump raw predictions to this .pkl file for offline evaluation')
    parser.add_argument('--show-dir', help='save painted predictions under work_dir/<timestamp>/SHOW_DIR')
    add_runner_args(parser)
    add_model_args(parser, device=False)
    return parser.parse_args(argv)


def main(argv: list | None = None) -> None:
    args = parse_args(argv)
    cfg = load_runner_config(args)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'{args.checkpoint}: checkpoint file not found')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'{args.out}: --out must end with .pkl')
    kwargs = model_kwargs_of(args)
    trust = kwargs.pop('trust_checkpoint')
    # mmdet's painter (--show-dir) and DumpDetResults (--out) need dense masks; metrics and the submission take RLE
    dense = bool(args.show_dir or args.out)
    cfg = exit_on_bad_input(inference_config, cfg, mask_format='bitmap' if dense else 'rle', **kwargs)
    cfg.load_from = None  # loaded below, all or nothing, instead of mmengine's partial load
    if args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook

        args.show, args.wait_time = False, 0
        cfg = trigger_visualization_hook(cfg, args)
    prepare_launch(cfg, args.launcher, training=False)

    try:
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        load_inference_checkpoint(runner.model, args.checkpoint, args.config, trust=trust)
        runner.model.cfg = cfg
        apply_engine(runner.model, args.checkpoint)  # --engine openvino: the trunk compiled from these weights
        if args.out is not None:
            from mmdet.evaluation import DumpDetResults

            runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
        metrics = runner.test()
    except input_errors() as err:  # data files, the checkpoint, output folders
        raise SystemExit(one_line(err)) from None
    runner.logger.info('test metrics: ' + ', '.join(f'{k}={v}' for k, v in (metrics or {}).items()))
    for metric in runner.test_evaluator.metrics:  # CellPathologyMetric of a multi-class data set
        if getattr(metric, 'confusion', None) is not None and len(metric.classes) > 1:
            png, md = save_confusion(metric.confusion, metric.classes, runner.log_dir,
                                     f'nuclei paired within {metric.radius:g} px (HoVer-Net), '
                                     f'score >= {metric.score_thr:g}')
            runner.logger.info(f'class confusion of matched nuclei: {png}, {md}')


if __name__ == '__main__':
    main()
