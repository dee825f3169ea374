"""Test (and evaluate) a checkpoint with an mmcell config (mmdet's tools/test.py flags)."""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
from mmcell.utils import add_runner_args, load_runner_config, prepare_launch  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump raw predictions to this .pkl file for offline evaluation')
    parser.add_argument('--show-dir', help='save painted predictions under work_dir/<timestamp>/SHOW_DIR')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (tta_model in the config)')
    return add_runner_args(parser).parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_runner_config(args)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'{args.checkpoint}: checkpoint file not found')
    cfg.load_from = args.checkpoint
    if args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook

        args.show, args.wait_time = False, 0
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise SystemExit(f'{args.config}: --tta needs tta_model and tta_pipeline in the config')
        cfg.model = dict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'{args.out}: --out must end with .pkl')
    prepare_launch(cfg, args.launcher)

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults

        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    metrics = runner.test()
    runner.logger.info('test metrics: ' + ', '.join(f'{k}={v}' for k, v in (metrics or {}).items()))


if __name__ == '__main__':
    main()
