"""MoNuSeg recipe vs its peers (Cellpose 3.1, StarDist), side by side in one run: same 10/3 split, same training
time, same scoring code. Writes its section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/monuseg_vs_peers.py SRC WORK [--peers cellpose stardist] [--budget-s S]
        [--reuse-mmcell]

1. ``tools/misc/monuseg_cpu.sh SRC WORK/mmcell``: converts SRC (MoNuSeg release layout) and trains the CPU recipe;
   its training time is the budget (or ``--budget-s``).
2. Each peer in its own venv, created here if missing and never mmcell's: Cellpose (``.venv-cellpose``:
   ``torch==2.13.0 cellpose==3.1.1.3``, ``benchmarks/cellpose_train_predict.py``) and StarDist (``.venv-stardist``:
   ``stardist==0.9.2 tensorflow-cpu==2.21.0 tf-keras==2.21.0 imagecodecs``, ``benchmarks/stardist_train_predict.py``)
   train from scratch on the same 10 tiles for the same time and predict the 3 val tiles as label images.
3. All are scored here with the same code (``mmcell.apis.evaluate``: ``evaluate_tiles`` for mmcell,
   ``evaluate_label_images`` for the peers) on the 3 val tiles: segm AP50 and AP (maxDets 1000, one class), AJI,
   AJI+, PQ, seconds per tile; the table is printed and appended to ``benchmarks/RESULTS.md``, and
   ``WORK/comparison.png`` shows the outlines of the ground truth and of every method.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: peer -> (its venv, the pip requirements installed there, its side script, its name in the tables)
PEERS = {
    'cellpose': (REPO / '.venv-cellpose', ('torch==2.13.0', 'cellpose==3.1.1.3'),
                 'benchmarks/cellpose_train_predict.py', 'Cellpose 3.1.1.3 from scratch'),
    'stardist': (REPO / '.venv-stardist', ('stardist==0.9.2', 'tensorflow-cpu==2.21.0', 'tf-keras==2.21.0',
                                           'imagecodecs==2026.3.6'),
                 'benchmarks/stardist_train_predict.py', 'StarDist 0.9.2 from scratch'),
}


def _worth_printing(line: str) -> bool:
    """The console keeps every line but progress-bar fragments and the training log lines between hundreds."""
    if line.startswith(('\r', ' ')):
        return False
    it = re.search(r'Iter\(train\) \[\s*(\d+)/', line)
    return it is None or int(it.group(1)) % 100 == 0


def run(cmd: list, log: Path) -> str:
    """Run ``cmd`` from the repo root, teeing its output into ``log``; stop with its tail on failure."""
    print('$', ' '.join(map(str, cmd)), flush=True)
    lines = []
    with subprocess.Popen([str(c) for c in cmd], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc, open(log, 'w') as fh:
        for line in proc.stdout:
            fh.write(line)
            lines.append(line)
            if _worth_printing(line):
                print(line.rstrip()[:200], flush=True)
    if proc.returncode != 0:
        sys.exit(f'{cmd[0]} failed (exit {proc.returncode}); log: {log}\n' + ''.join(lines[-20:]))
    return ''.join(lines)


def ensure_peer_venv(peer: str) -> Path:
    """The python of ``peer``'s own venv, created with its pinned requirements when missing."""
    venv, spec, _, _ = PEERS[peer]
    python = venv / 'bin' / 'python'
    if not python.exists():
        subprocess.run(['python3', '-m', 'venv', str(venv)], check=True)
        subprocess.run([str(python), '-m', 'pip', 'install', '-q', *spec], check=True)
    return python


def comparison_figure(data_root: Path, names: list, folders: dict, out: Path, size: int = 256) -> Path:
    """One row per val tile: its centre crop with the outlines of the ground truth and of each method's cells.

    Args:
        folders: column title -> folder of ``<name>_labels.tif`` label images (the ground truth comes first).
        size: crop side in tile pixels.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import tifffile

    from mmcell.datasets.hw3_format import parse_sample
    from mmcell.datasets.image_io import read_image
    from mmcell.structures.label_image import instance_label_map
    from mmcell.utils.fileio import save_figure
    from mmcell.visualization.plots import contour_pixels

    columns = {'ground truth': None, **folders}
    colours = [(255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 128, 0)]
    fig, axes = plt.subplots(len(names), len(columns), figsize=(3.6 * len(columns), 3.8 * len(names)),
                             squeeze=False)
    for row, name in enumerate(names):
        sample = parse_sample(data_root / 'train' / name)
        rgb = read_image(data_root / 'train' / name / 'image.tif')
        height, width = rgb.shape[:2]
        y0, x0 = max((height - size) // 2, 0), max((width - size) // 2, 0)
        window = (slice(y0, y0 + size), slice(x0, x0 + size))
        for col, (title, folder) in enumerate(columns.items()):
            if folder is None:
                labels, colour = instance_label_map(sample['instances'], height, width), (0, 255, 0)
            else:
                labels = tifffile.imread(Path(folder) / f'{name}_labels.tif')
                colour = colours[(col - 1) % len(colours)]
            panel = rgb[window].copy()
            panel[contour_pixels(labels[window])] = colour
            ax = axes[row, col]
            ax.imshow(panel, interpolation='nearest')
            ax.set_axis_off()
            cells = len(np.unique(labels[labels > 0]))
            ax.set_title(f'{title}: {cells} cells in the tile' + (f'\n{name}' if col == 0 else ''), fontsize=9)
    names_colours = ', '.join(f'{t} {c}' for t, c in zip(folders, ('yellow', 'cyan', 'magenta', 'orange')))
    fig.suptitle(f'Centre {size} x {size} px of each val tile (40x); outlines: ground truth green, {names_colours}',
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='MoNuSeg release folder (images/ + annotations/)')
    parser.add_argument('work', help='work folder (mmcell/, cellpose/, stardist/, data/)')
    parser.add_argument('--peers', nargs='+', choices=sorted(PEERS), default=sorted(PEERS),
                        help='peer methods to run (default: all)')
    parser.add_argument('--budget-s', type=float, help='peer training seconds (default: mmcell training time)')
    parser.add_argument('--reuse-mmcell', action='store_true', help='skip training when WORK/mmcell has a model')
    parser.add_argument('--reuse-peers', action='store_true', help='skip a peer whose WORK/<peer>/timing.json exists')
    parser.add_argument('--results', default=str(REPO / 'benchmarks' / 'RESULTS.md'))
    args = parser.parse_args()

    from mmengine.config import Config

    from mmcell.apis.evaluate import TILE_FIGURES, evaluate_label_images, evaluate_tiles
    from mmcell.evaluation.submission import LABEL_SCORE_THR
    from mmcell.utils.fileio import atomic_write_text, write_results_section

    work = Path(args.work).resolve()
    (work / 'mmcell').mkdir(parents=True, exist_ok=True)
    mm_dir = work / 'mmcell'
    summary = mm_dir / 'summary.txt'
    if not (args.reuse_mmcell and summary.exists()):
        text = run(['bash', 'tools/misc/monuseg_cpu.sh', args.src, mm_dir], mm_dir / 'monuseg_cpu.log')
        atomic_write_text(summary, text[text.rfind('=== MoNuSeg recipe'):])
    text = summary.read_text()
    train_s = float(re.search(r'train time:\s+(\d+)s', text).group(1))
    script_s = float(re.search(r'total:\s+(\d+)s', text).group(1))
    config = re.search(r'config:\s+(\S+)', text).group(1)
    checkpoint = re.search(r'best checkpoint:\s+(\S+)', text).group(1)
    data_root = mm_dir / 'data'
    val_names = list(Config.fromfile(config).val_dataloader.dataset.val_names)

    budget = args.budget_s or train_s
    start = time.time()
    mm = evaluate_tiles(config, checkpoint, data_root, val_names, save_dir=mm_dir)
    mm_predict_s = (time.time() - start) / len(val_names)
    rows = [('mmcell MoNuSeg CPU recipe', train_s, mm, mm_predict_s)]
    folders = {'mmcell': mm_dir}
    for peer in args.peers:
        _, _, script, title = PEERS[peer]
        peer_dir = work / peer
        peer_dir.mkdir(exist_ok=True)
        if not (args.reuse_peers and (peer_dir / 'timing.json').exists()):
            run([ensure_peer_venv(peer), script, data_root, peer_dir, '--val', *val_names, '--budget-s', str(budget)],
                peer_dir / f'{peer}.log')
        timing = json.loads((peer_dir / 'timing.json').read_text())
        figs = evaluate_label_images(data_root, val_names, peer_dir)
        rows.append((f'{title} ({timing["iterations"]} it)', timing['train_s'], figs,
                     float(np.mean(list(timing['predict_s'].values())))))
        folders[title.split(' ')[0]] = peer_dir
    figure = comparison_figure(data_root, val_names, folders, work / 'comparison.png')

    command_args = ' '.join([args.src, args.work, '--peers', *args.peers]
                            + (['--budget-s', f'{args.budget_s:g}'] if args.budget_s else [])
                            + (['--reuse-mmcell'] if args.reuse_mmcell else []))
    keys = TILE_FIGURES
    table = ['| method | train s | ' + ' | '.join(keys) + ' | s/tile |', '|---|' + '---|' * (len(keys) + 2)]
    for name, t, figs, s_tile in rows:
        table.append(f'| {name} | {t:.0f} | ' + ' | '.join(f'{figs[k]:.3f}' for k in keys) + f' | {s_tile:.1f} |')
    ratios = []
    for name, _, figs, _ in rows[1:]:
        ratios.append(f'mmcell / {name.split(" ")[0]}: ' + ' | '.join(
            f'{k} {mm[k] / figs[k]:.2f}x' if figs[k] > 0 else f'{k} n/a' for k in keys))
    block = '\n'.join([
        f'\n## MoNuSeg CPU recipe vs peers, side by side ({datetime.date.today()})',
        f'Machine: {platform.node()} ({os.cpu_count()} cores), CPU only. Data: MoNuSeg 2018 training images '
        '(13 tiles, CC BY-NC-SA 4.0), fixed split: 10 train, 3 val tiles ' + ', '.join(val_names) + '.',
        f'Command: `.venv/bin/python benchmarks/monuseg_vs_peers.py {command_args}`. AP at maxDets '
        f'1000, one class; AJI/AJI+/PQ on label images (mmcell: detections with score >= {LABEL_SCORE_THR:g}, '
        'overlaps to the higher score; peers: their label images). Peer scores for AP: Cellpose the mean cell '
        'probability inside the mask, StarDist its object probability.',
        '', *table, '', *ratios,
        f'`tools/misc/monuseg_cpu.sh` (convert + train + summary): {script_s / 60:.1f} min in all; training '
        f'{train_s / 60:.1f} min. Outlines of all on the val tiles: `{figure}`.', ''])
    print(block)
    results = Path(args.results)
    write_results_section(results, block)


if __name__ == '__main__':
    main()
