"""Cellpose 3.1 peer for the MoNuSeg recipe benchmark (benchmarks/monuseg_vs_peers.py, which scores it
against mmcell and writes the figures to benchmarks/RESULTS.md): train from scratch on an HW3-layout split, predict
the val tiles into OUT (label images, scores, timing.json).

Runs in its own venv (``.venv-cellpose``: ``torch==2.13.0 cellpose==3.1.1.3``), not mmcell's: it imports neither
mmcell nor mmdet. ``benchmarks/monuseg_vs_peers.py`` calls it; run by hand as

    .venv-cellpose/bin/python benchmarks/cellpose_train_predict.py DATA_ROOT OUT --val NAME... --budget-s 1500

Settings (the peer as measured in issue 10): its residual U-Net, no pretrained weights, RGB input (nchan=3),
AdamW (RAdam off: ``SGD=False`` is AdamW in cellpose 3.1) lr 0.005, batches of 8 patches of 224 px, one batch per
"epoch" (``nimg_per_epoch=8``), images rescaled to cellpose's 30 px diameter during training and at test time by
the median nucleus diameter of the training labels. The number of iterations fills ``--budget-s`` of training
(flow computation included): a 3-iteration calibration run measures the seconds per iteration first.
Each val tile gets ``OUT/<name>_labels.tif`` (uint32 instances) and ``OUT/<name>_scores.json`` (per instance id
the mean cell probability inside its mask: cellpose has no detection score, and AP needs a ranking).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import tifffile


def read_sample(folder: Path, with_classes: bool = False) -> tuple:
    """RGB image and instance label image of one HW3 training folder (all class files merged); ``with_classes``:
    also the class of each instance id, ``{id: K}`` for the cells of ``class<K>.tif``."""
    img = tifffile.imread(folder / 'image.tif')
    img = img[..., :3] if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
    labels = np.zeros(img.shape[:2], np.uint32)
    classes = {}
    next_id = 1
    for class_file in sorted(folder.glob('class*.tif')):
        cmap = tifffile.imread(class_file)
        ids = np.unique(cmap[cmap > 0])
        lut = {v: next_id + i for i, v in enumerate(ids)}
        for v, new in lut.items():
            labels[cmap == v] = new
            classes[new] = int(class_file.stem[len('class'):])
        next_id += len(ids)
    return (img.astype(np.uint8), labels) + ((classes, ) if with_classes else ())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('data_root')
    parser.add_argument('out')
    parser.add_argument('--val', nargs='+', required=True, help='val folder names (the rest trains)')
    parser.add_argument('--budget-s', type=float, help='training wall-clock budget (calibrated iterations)')
    parser.add_argument('--iterations', type=int, help='train exactly this many iterations instead of a budget')
    parser.add_argument('--lr', type=float, default=0.005)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--bsize', type=int, default=224)
    args = parser.parse_args()

    from cellpose import models, train, utils

    root, out = Path(args.data_root), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in (root / 'train').iterdir() if p.is_dir())
    train_names = [n for n in names if n not in set(args.val)]
    train_imgs, train_labels = zip(*[read_sample(root / 'train' / n) for n in train_names])
    diam = float(np.median(np.concatenate([utils.diameters(lab)[1] for lab in train_labels])))
    print(f'cellpose: {len(train_names)} train tiles, median diameter {diam:.1f} px', flush=True)

    def fit(n_iter: int, name: str) -> tuple:
        model = models.CellposeModel(gpu=False, pretrained_model=False, model_type=None, diam_mean=30.0, nchan=3)
        start = time.time()
        # channels first and no channels/channel_axis, as cellpose's own `--all_channels` training does: with a
        # channel_axis, cellpose 3.1 keeps only the first 2 of the 3 RGB channels during training
        train.train_seg(model.net, train_data=[img.transpose(2, 0, 1) for img in train_imgs],
                        train_labels=list(train_labels), channels=None, rgb=True, normalize=True,
                        learning_rate=args.lr, weight_decay=1e-4,
                        SGD=False, n_epochs=n_iter, batch_size=args.batch_size, nimg_per_epoch=args.batch_size,
                        bsize=args.bsize, min_train_masks=1, save_path=str(out), model_name=name, save_every=10**6)
        return model, time.time() - start

    if (args.iterations is None) == (args.budget_s is None):
        parser.error('give exactly one of --budget-s and --iterations')
    per_iter = float('nan')
    if args.iterations is not None:
        n_iter = args.iterations
    else:
        _, calib_s = fit(3, 'calibration')
        # the calibration run's time = fixed set-up (flows) + 3 iterations; a 6-iteration one separates them
        _, calib6_s = fit(6, 'calibration')
        per_iter = max((calib6_s - calib_s) / 3, 1e-3)
        setup_s = max(calib_s - 3 * per_iter, 0.0)
        n_iter = max(10, int((args.budget_s - setup_s) / per_iter))
        print(f'cellpose: {per_iter:.2f} s/iteration, set-up {setup_s:.0f} s -> {n_iter} iterations for '
              f'{args.budget_s:.0f} s', flush=True)
    model, train_s = fit(n_iter, 'monuseg')
    print(f'cellpose: trained {n_iter} iterations in {train_s:.0f} s', flush=True)

    timing = dict(train_s=train_s, iterations=n_iter, s_per_iter=per_iter, diameter=diam, predict_s={})
    for name in args.val:
        img, _ = read_sample(root / 'train' / name)
        start = time.time()
        masks, flows, _ = model.eval(img, channels=None, channel_axis=-1, diameter=diam, normalize=True)
        timing['predict_s'][name] = time.time() - start
        prob = 1.0 / (1.0 + np.exp(-flows[2]))
        ids = np.unique(masks[masks > 0])
        sums = np.bincount(masks.ravel(), weights=prob.ravel(), minlength=int(masks.max()) + 1)
        counts = np.bincount(masks.ravel(), minlength=int(masks.max()) + 1)
        scores = {int(i): float(sums[i] / counts[i]) for i in ids}
        tifffile.imwrite(out / f'{name}_labels.tif', masks.astype(np.uint32), compression='zlib')
        (out / f'{name}_scores.json').write_text(json.dumps(scores))
        print(f'cellpose: {name}: {len(ids)} cells in {timing["predict_s"][name]:.1f} s', flush=True)
    (out / 'timing.json').write_text(json.dumps(timing, indent=1))


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))
    main()
