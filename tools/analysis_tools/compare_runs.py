"""Compare training runs in one table: what each config changes, AP figures, per-class AP50, speed.

    .venv/bin/python tools/analysis_tools/compare_runs.py work_dirs/r50 work_dirs/x50 work_dirs/r101 [--base CFG]

For every work dir (made by ``tools/train.py``) it reads the config mmengine dumped there and the scalars log
(``<timestamp>/vis_data/scalars.json``). The "changes" column is the config diff against ``--base`` (default: the
first run's config), so a backbone experiment reads as ``model.backbone.depth: 50 -> 101``. Metrics are taken at
the validation with the best contest AP50 (``coco/segm_mAP_50``). ``--markdown`` prints a markdown table.
"""
from __future__ import annotations

import os.path as osp
import sys
from typing import Any, Dict, List, Optional

from mmengine.config import Config

from mmcell.evaluation.runs import find_config, read_scalars
from mmcell.utils.errors import ToolArgumentParser, exit_on_bad_input

# Keys that differ between any two runs and say nothing about the experiment.
IGNORED_PREFIXES = ('work_dir', 'launcher', 'resume', 'load_from', 'randomness', 'env_cfg', 'log_', 'visualizer',
                    'default_hooks.logger', 'experiment_name')
KEY_METRIC = 'coco/segm_mAP_50'


def flatten(cfg: Any, prefix: str = '') -> Dict[str, Any]:
    """Dotted keys -> leaf values (lists of dicts such as pipelines are indexed: ``pipeline.3.type``)."""
    out: Dict[str, Any] = {}
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            out.update(flatten(value, f'{prefix}{key}.'))
    elif isinstance(cfg, (list, tuple)) and any(isinstance(v, dict) for v in cfg):
        for i, value in enumerate(cfg):
            out.update(flatten(value, f'{prefix}{i}.'))
    else:
        out[prefix.rstrip('.')] = cfg
    return out


def config_diff(base: Dict[str, Any], cfg: Dict[str, Any]) -> List[str]:
    """``key: old -> new`` for every leaf that differs (``+key: new`` / ``-key`` when only on one side)."""
    changes = []
    for key in sorted(set(base) | set(cfg)):
        if key.startswith(IGNORED_PREFIXES):
            continue
        if key not in base:
            changes.append(f'+{key}: {cfg[key]!r}')
        elif key not in cfg:
            changes.append(f'-{key}')
        elif base[key] != cfg[key]:
            changes.append(f'{key}: {base[key]!r} -> {cfg[key]!r}')
    return changes


def summarize_run(work_dir: str) -> dict:
    """Best validation figures (by contest AP50) and training speed of one work dir."""
    records = read_scalars(work_dir)
    train = [r for r in records if 'loss' in r and 'time' in r]
    vals = [r for r in records if KEY_METRIC in r]
    summary: Dict[str, Any] = dict(work_dir=work_dir)
    if train:
        mean_time = sum(r['time'] for r in train) / len(train)
        iters = max(r.get('iter', r.get('step', 0)) for r in train)
        summary.update(iters=iters, iter_per_s=1.0 / mean_time if mean_time else float('nan'),
                       train_min=iters * mean_time / 60.0, final_loss=train[-1]['loss'])
    if vals:
        best = max(vals, key=lambda r: r[KEY_METRIC])
        summary['best_step'] = best.get('step')
        for key, value in best.items():
            if key.startswith('coco/'):
                summary[key[len('coco/'):]] = value
    return summary


def format_table(rows: List[List[str]], markdown: bool) -> str:
    if markdown:
        lines = ['| ' + ' | '.join(rows[0]) + ' |', '|' + '---|' * len(rows[0])]
        lines += ['| ' + ' | '.join(r) + ' |' for r in rows[1:]]
        return '\n'.join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def compare(work_dirs: List[str], base: Optional[str] = None, markdown: bool = False) -> str:
    """The comparison table (text) for ``work_dirs``; config diffs against ``base`` or the first run."""
    configs = [Config.fromfile(find_config(w)) for w in work_dirs]
    base_cfg = Config.fromfile(base) if base else configs[0]
    base_flat = flatten(base_cfg.to_dict())
    classes = None
    summaries = [summarize_run(w) for w in work_dirs]
    for s in summaries:
        names = [k[len('segm_'):-len('_AP50')] for k in s if k.startswith('segm_') and k.endswith('_AP50')]
        classes = classes or names
    header = ['run', 'AP', 'AP50', 'AP50 md1000', 'bbox AP50'] + [f'{c} AP50' for c in classes or []] + \
        ['best epoch', 'train min', 'iter/s']
    rows = [header]

    def fmt(value: Any, digits: int = 3) -> str:
        return f'{value:.{digits}f}' if isinstance(value, (int, float)) else '-'

    for work_dir, s in zip(work_dirs, summaries):
        rows.append([osp.basename(osp.normpath(work_dir)), fmt(s.get('segm_mAP')), fmt(s.get('segm_mAP_50')),
                     fmt(s.get('segm_mAP_50_md1000')), fmt(s.get('bbox_mAP_50'))] +
                    [fmt(s.get(f'segm_{c}_AP50')) for c in classes or []] +
                    [str(s.get('best_step', '-')), fmt(s.get('train_min'), 1), fmt(s.get('iter_per_s'), 2)])
    out = [format_table(rows, markdown), '',
           f'config changes relative to {base or find_config(work_dirs[0])}:']
    for work_dir, cfg in zip(work_dirs, configs):
        changes = config_diff(base_flat, flatten(cfg.to_dict()))
        out.append(f'- {osp.basename(osp.normpath(work_dir))}: ' + ('; '.join(changes) if changes else '(base)'))
    return '\n'.join(out)


def main(argv=None) -> None:
    parser = ToolArgumentParser(description='Compare training runs (config diff, AP, speed)')
    parser.add_argument('work_dirs', nargs='+', help='work dirs written by tools/train.py')
    parser.add_argument('--base', help='config to diff against (default: the first run\'s config)')
    parser.add_argument('--markdown', action='store_true', help='print a markdown table')
    args = parser.parse_args(argv)
    print(exit_on_bad_input(compare, args.work_dirs, args.base, args.markdown))


if __name__ == '__main__':
    sys.exit(main())
