"""MoNuSeg recipe vs Cellpose 3.1, side by side in one run, on the same 10/3 split and the same training time:
segm AP50/AP, AJI, AJI+, PQ and seconds per tile. Prints a table and appends it to ``--results`` (default
benchmarks/RESULTS.md); the outline figure goes to WORK/comparison.png.

    .venv/bin/python benchmarks/monuseg_vs_cellpose.py SRC WORK [--budget-s S] [--reuse-mmcell]

1. ``tools/misc/monuseg_cpu.sh SRC WORK/mmcell``: converts SRC (MoNuSeg release layout) and trains the CPU recipe;
   its training time is the budget (or ``--budget-s``).
2. Cellpose in its own venv (``.venv-cellpose``, created if missing: ``torch==2.13.0 cellpose==3.1.1.3``) trains
   from scratch on the same 10 tiles for the same time and predicts the 3 val tiles
   (``benchmarks/cellpose_train_predict.py``).
3. Both are scored here with the same code on the 3 val tiles: segm AP50 and AP (maxDets 1000, one class,
   faster-coco-eval), AJI, AJI+, PQ (``mmcell.evaluation.metrics``), seconds per tile; the table is printed and
   appended to ``benchmarks/RESULTS.md``.
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
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CELLPOSE_VENV = REPO / '.venv-cellpose'
CELLPOSE_SPEC = ('torch==2.13.0', 'cellpose==3.1.1.3')


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


def ensure_cellpose_venv() -> Path:
    python = CELLPOSE_VENV / 'bin' / 'python'
    if not python.exists():
        subprocess.run(['python3', '-m', 'venv', str(CELLPOSE_VENV)], check=True)
        subprocess.run([str(python), '-m', 'pip', 'install', '-q', *CELLPOSE_SPEC], check=True)
    return python


def ground_truth(data_root: Path, name: str, img_id: int) -> dict:
    """A metric data sample's ground-truth part for one converted tile (all classes as one)."""
    from mmcell.datasets.hw3_format import parse_sample

    sample = parse_sample(data_root / 'train' / name)
    instances = [dict(bbox=inst['bbox'], bbox_label=0, mask=inst['mask'], ignore_flag=0)
                 for inst in sample['instances']]
    return dict(img_id=img_id, ori_shape=(sample['height'], sample['width']), instances=instances)


def score(samples: list, pathology_score_thr: float) -> dict:
    """AP50/AP (maxDets 1000, one class) and AJI/AJI+/PQ of metric data samples, through mmcell's two metrics."""
    from mmcell.evaluation.metrics import CellCocoMetric, CellPathologyMetric

    coco = CellCocoMetric(metric='segm', classwise=False, class_agnostic=True)
    path = CellPathologyMetric(score_thr=pathology_score_thr, classwise=False)
    figures = {}
    for metric in (coco, path):
        metric.dataset_meta = dict(classes=('nucleus', ))
        metric.process({}, samples)
        figures.update(metric.compute_metrics(metric.results))
    return dict(AP50=figures['segm_mAP_50_md1000'], AP=figures['segm_mAP_md1000'], AJI=figures['aji'],
                **{'AJI+': figures['aji_plus']}, PQ=figures['pq'])


def evaluate_mmcell(config: str, checkpoint: str, data_root: Path, names: list,
                    cfg_options: Optional[dict] = None, save_dir: Optional[Path] = None) -> dict:
    """Predict the tiles with the recipe's model (the fast inference path) and score them.

    ``save_dir``: also write each tile's label image (``<name>_labels.tif``, the one AJI/PQ score) there.
    """
    import tifffile
    import torch

    from mmcell.apis import init_cell_model, predict_images
    from mmcell.evaluation.submission import LABEL_SCORE_THR  # AJI/PQ: the cells `mmcell segment` would keep
    from mmcell.structures.label_image import instances_to_label_map
    from mmcell.utils.fileio import atomic_write

    model = init_cell_model(config, checkpoint, cfg_options=cfg_options)
    paths = [str(data_root / 'train' / n / 'image.tif') for n in names]
    samples = []
    for k, (name, out) in enumerate(zip(names, predict_images(model, paths, progress=False))):
        pred = out.pred_instances
        masks = pred.masks if isinstance(pred.masks, (list, tuple)) else torch.as_tensor(pred.masks)
        samples.append(dict(ground_truth(data_root, name, k), pred_instances=dict(
            bboxes=pred.bboxes, scores=pred.scores, labels=torch.zeros_like(pred.labels), masks=masks)))
        if save_dir is not None:
            height, width = samples[-1]['ori_shape']
            labels, _ = instances_to_label_map(masks, pred.scores.numpy(), pred.labels.numpy(), height, width,
                                               score_thr=LABEL_SCORE_THR)
            atomic_write(Path(save_dir) / f'{name}_labels.tif',
                         lambda tmp, labels=labels: tifffile.imwrite(tmp, labels.astype(np.uint32)))
    return score(samples, pathology_score_thr=LABEL_SCORE_THR)


def evaluate_label_maps(data_root: Path, names: list, folder: Path) -> dict:
    """Score label images (``<name>_labels.tif`` + ``<name>_scores.json``: score per id) of a peer method."""
    import tifffile
    import torch
    from scipy import ndimage

    from mmcell.structures.rle import crop_rle

    samples = []
    for k, name in enumerate(names):
        labels = tifffile.imread(folder / f'{name}_labels.tif').astype(np.int64)
        height, width = labels.shape
        scores = {int(i): s for i, s in json.loads((folder / f'{name}_scores.json').read_text()).items()}
        ids = np.array(sorted(scores), dtype=np.int64)
        found = ndimage.find_objects(labels, max_label=int(ids.max(initial=0)))
        rles, boxes = [], []
        for i in ids:  # each cell encoded from its own box, not from a full-image mask
            ys, xs = found[i - 1]
            rle = crop_rle(labels[ys, xs] == i, xs.start, ys.start, height, width)
            rle['counts'] = rle['counts'].decode()
            rles.append(rle)
            boxes.append([xs.start, ys.start, xs.stop, ys.stop])
        samples.append(dict(ground_truth(data_root, name, k), pred_instances=dict(
            bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            scores=torch.tensor([scores[i] for i in ids], dtype=torch.float32),
            labels=torch.zeros(len(ids), dtype=torch.int64), masks=rles)))
    # the peer's label image is its segmentation: every cell counts for AJI/PQ
    return score(samples, pathology_score_thr=0.0)


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
                labels, colour = tifffile.imread(Path(folder) / f'{name}_labels.tif'), (255, 255, 0)
            panel = rgb[window].copy()
            panel[contour_pixels(labels[window])] = colour
            ax = axes[row, col]
            ax.imshow(panel, interpolation='nearest')
            ax.set_axis_off()
            cells = len(np.unique(labels[labels > 0]))
            ax.set_title(f'{title}: {cells} cells in the tile' + (f'\n{name}' if col == 0 else ''), fontsize=9)
    fig.suptitle(f'Centre {size} x {size} px of each val tile (40x); outlines: ground truth green, predictions '
                 'yellow', fontsize=10)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='MoNuSeg release folder (images/ + annotations/)')
    parser.add_argument('work', help='work folder (mmcell/, cellpose/, data/)')
    parser.add_argument('--budget-s', type=float, help='Cellpose training seconds (default: mmcell training time)')
    parser.add_argument('--reuse-mmcell', action='store_true', help='skip training when WORK/mmcell has a model')
    parser.add_argument('--results', default=str(REPO / 'benchmarks' / 'RESULTS.md'))
    args = parser.parse_args()

    from mmengine.config import Config

    from mmcell.evaluation.submission import LABEL_SCORE_THR
    from mmcell.utils.fileio import atomic_write_text

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
    cp_dir = work / 'cellpose'
    cp_dir.mkdir(exist_ok=True)
    run([ensure_cellpose_venv(), 'benchmarks/cellpose_train_predict.py', data_root, cp_dir, '--val', *val_names,
         '--budget-s', str(budget)], cp_dir / 'cellpose.log')
    cp_timing = json.loads((cp_dir / 'timing.json').read_text())

    start = time.time()
    mm = evaluate_mmcell(config, checkpoint, data_root, val_names, save_dir=mm_dir)
    mm_predict_s = (time.time() - start) / len(val_names)
    cp = evaluate_label_maps(data_root, val_names, cp_dir)
    figure = comparison_figure(data_root, val_names, {'mmcell': mm_dir, 'Cellpose': cp_dir},
                               work / 'comparison.png')

    rows = [('mmcell MoNuSeg CPU recipe', train_s, mm, mm_predict_s),
            (f'Cellpose 3.1.1.3 from scratch ({cp_timing["iterations"]} it x 8)', cp_timing['train_s'], cp,
             float(np.mean(list(cp_timing['predict_s'].values()))))]
    command_args = ' '.join([args.src, args.work] + (['--budget-s', f'{args.budget_s:g}'] if args.budget_s else [])
                            + (['--reuse-mmcell'] if args.reuse_mmcell else []))
    keys = ('AP50', 'AP', 'AJI', 'AJI+', 'PQ')
    table = ['| method | train s | ' + ' | '.join(keys) + ' | s/tile |', '|---|' + '---|' * (len(keys) + 2)]
    for name, t, figs, s_tile in rows:
        table.append(f'| {name} | {t:.0f} | ' + ' | '.join(f'{figs[k]:.3f}' for k in keys) + f' | {s_tile:.1f} |')
    ratio = ' | '.join(f'{k} {mm[k] / cp[k]:.2f}x' if cp[k] > 0 else f'{k} n/a' for k in keys)
    block = '\n'.join([
        f'\n## MoNuSeg CPU recipe vs Cellpose, side by side ({datetime.date.today()})',
        f'Machine: {platform.node()} ({os.cpu_count()} cores), CPU only. Data: MoNuSeg 2018 training images '
        '(13 tiles, CC BY-NC-SA 4.0), fixed split: 10 train, 3 val tiles ' + ', '.join(val_names) + '.',
        f'Command: `.venv/bin/python benchmarks/monuseg_vs_cellpose.py {command_args}`. AP at maxDets '
        f'1000, one class; AJI/AJI+/PQ on label images (mmcell: detections with score >= {LABEL_SCORE_THR:g}, '
        'overlaps to the higher score; Cellpose: its label image). Cellpose score for AP: mean cell probability '
        'inside the mask.',
        '', *table, '', f'mmcell / Cellpose: {ratio}',
        f'`tools/misc/monuseg_cpu.sh` (convert + train + summary): {script_s / 60:.1f} min in all; training '
        f'{train_s / 60:.1f} min. Outlines of both on the val tiles: `{figure}`.', ''])
    print(block)
    results = Path(args.results)
    from mmcell.utils.fileio import write_results_section

    write_results_section(results, block)


if __name__ == '__main__':
    main()
