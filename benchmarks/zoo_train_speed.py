"""Seconds per training iteration of MoNuSeg zoo configs on this machine (a short probe, not a training run).
The table is printed for benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/zoo_train_speed.py DATA_ROOT [CONFIG ...] [--iters 25] [--skip 5]

Trains each config (default: every ``configs/monuseg/*cpu*.py``) from scratch for ``--iters`` iterations on the
HW3-layout DATA_ROOT (e.g. MoNuSeg converted by ``to_hw3.py --format monuseg``) with the recipe's crops and batch,
no validation, and reports the mean wall time of the iterations after the first ``--skip`` (start-up excluded) and
the implied time of the config's full schedule. The table is printed (add it to ``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmcell.apis.crossval import fold_train_config
from mmcell.datasets.dataset_config import cell_dataset_cfg
from mmcell.utils.errors import ToolArgumentParser
from mmcell.utils.setup_env import load_config, register_all_modules

REPO = Path(__file__).resolve().parents[1]


class IterClock(Hook):
    """Wall time at the end of every training iteration."""

    def __init__(self) -> None:
        self.stamps = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.stamps.append(time.perf_counter())


def probe(config: str, data_root: str, iters: int, skip: int) -> tuple:
    """(s per iteration after ``skip``, the config's full iteration count)."""
    cfg = load_config(config, data_root=data_root)
    full = int(cfg.train_cfg.max_iters)
    val_names = list(cell_dataset_cfg(cfg.train_dataloader.dataset).val_names)
    with tempfile.TemporaryDirectory(prefix='zoo_speed_') as tmp:
        cfg = fold_train_config(cfg, val_names, tmp, iters=iters)
        cfg.default_hooks.checkpoint.interval = 10**9  # no checkpoint
        runner = Runner.from_cfg(cfg)
        clock = IterClock()
        runner.register_hook(clock, priority='LOWEST')
        runner.train()
    stamps = clock.stamps[skip - 1:]
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), full


def main() -> None:
    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('data_root')
    parser.add_argument('configs', nargs='*')
    parser.add_argument('--iters', type=int, default=25)
    parser.add_argument('--skip', type=int, default=5)
    args = parser.parse_args()
    register_all_modules()
    configs = args.configs or [str(p) for p in sorted((REPO / 'configs' / 'monuseg').glob('*cpu*.py'))]
    rows = []
    for config in configs:
        s_iter, full = probe(config, args.data_root, args.iters, args.skip)
        rows.append((Path(config).name, s_iter, full))
        print(f'{Path(config).name}: {s_iter:.2f} s/iter', flush=True)
    print('\n| config | s / iteration | full schedule (iterations -> min) |\n|---|---|---|')
    for name, s_iter, full in rows:
        print(f'| {name} | {s_iter:.2f} | {full} -> {s_iter * full / 60:.1f} |')


if __name__ == '__main__':
    main()
