"""Plot training loss and validation metric curves of a work dir as PNG (from mmengine's scalars log).

    .venv/bin/python tools/analysis_tools/plot_curves.py work_dirs/RUN [--out curves.png]
        [--losses loss loss_mask] [--metrics coco/segm_mAP_50 coco/segm_mAP_50_md1000]

Reads every ``<timestamp>/vis_data/scalars.json`` under the work dir (a resumed run continues the curves) and
writes one figure: losses against iteration on the left, validation metrics against epoch on the right.
"""
from __future__ import annotations

import os.path as osp

from mmcell.evaluation.runs import RunError, read_scalars
from mmcell.utils.errors import ToolArgumentParser, exit_on_bad_input
from mmcell.utils.fileio import save_figure

DEFAULT_METRICS = ('coco/segm_mAP_50', 'coco/segm_mAP_50_md1000', 'coco/segm_mAP', 'coco/bbox_mAP_50')


def plot_curves(work_dir: str, out: str, losses=None, metrics=DEFAULT_METRICS) -> str:
    """Write the PNG and return its path. ``losses`` None plots ``loss`` and every ``loss_*`` key."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    records = read_scalars(work_dir)
    train = [r for r in records if 'loss' in r]
    vals = [r for r in records if any(m in r for m in metrics)]
    if not train and not vals:
        raise RunError(f'{work_dir}: the log has neither training losses nor validation metrics')
    if losses is None:
        losses = ['loss'] + sorted({k for r in train for k in r if k.startswith('loss_')})
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key in losses:
        points = [(r.get('iter', r.get('step')), r[key]) for r in train if key in r]
        if points:
            ax_loss.plot(*zip(*points), label=key, linewidth=2 if key == 'loss' else 1)
    ax_loss.set(xlabel='iteration', ylabel='loss', title=f'training loss: {osp.basename(osp.normpath(work_dir))}')
    ax_loss.set_yscale('log')
    ax_loss.legend(fontsize=8)
    for key in metrics:
        points = [(r.get('step'), r[key]) for r in vals if key in r]
        if points:
            ax_val.plot(*zip(*points), marker='o', label=key)
    ax_val.set(xlabel='epoch', ylabel='value', title='validation', ylim=(0, 1))
    if vals:
        ax_val.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None) -> None:
    parser = ToolArgumentParser(description='Plot loss / metric curves of a work dir')
    parser.add_argument('work_dir')
    parser.add_argument('--out', help='PNG path (default: WORK_DIR/curves.png)')
    parser.add_argument('--losses', nargs='+', help='loss keys (default: loss and every loss_*)')
    parser.add_argument('--metrics', nargs='+', default=list(DEFAULT_METRICS), help='validation metric keys')
    args = parser.parse_args(argv)
    path = exit_on_bad_input(plot_curves, args.work_dir, args.out or osp.join(args.work_dir, 'curves.png'),
                             args.losses, args.metrics)
    print(f'curves written to {path}')


if __name__ == '__main__':
    main()
