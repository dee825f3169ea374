"""StarDist peer for the recipe benchmarks: train a StarDist2D from scratch on an HW3-layout split, predict the
val tiles. Runs in its own venv (``.venv-stardist``: ``stardist``, ``tensorflow-cpu`` and ``tf-keras``; see
``benchmarks/monuseg_vs_peers.py``), not mmcell's: it imports neither mmcell nor mmdet nor torch.
benchmarks/monuseg_vs_peers.py (MoNuSeg, one class) and benchmarks/consep_vs_stardist.py (CoNSeP, 4 classes,
``--n-classes 4``) score it with mmcell's code and write the figures to benchmarks/RESULTS.md.

    .venv-stardist/bin/python benchmarks/stardist_train_predict.py DATA_ROOT OUT --val NAME... --budget-s 1500
        [--n-classes 4]

Settings (StarDist's own 2D example for H&E, as its ``2D_versatile_he`` model was trained): 32 rays, grid (2, 2),
RGB input normalised per image to percentiles 1-99.8, patches of 256 px, batch 4, flips and 90-degree rotations,
its default Adam lr 3e-4 with plateau decay; no pretrained weights. Training stops when ``--budget-s`` seconds have
passed (checked after every batch), or after ``--steps`` batches. Thresholds: StarDist's defaults (probability 0.5,
NMS 0.4); ``optimize_thresholds`` would need held-out tiles, which are the test here.
Each val tile gets ``OUT/<name>_labels.tif`` (uint32 instances) and ``OUT/<name>_scores.json`` (per instance id its
object probability, StarDist's detection score), as the Cellpose side writes them.
``--n-classes N``: StarDist's multi-class mode (``Config2D(n_classes=N)``, its class head trained on the class of each
training nucleus, ``class<K>.tif`` -> class K, with its default unweighted class loss); each val tile also gets
``OUT/<name>_classes.json``, per instance id the class K in 1..N of the highest of its N class probabilities
(StarDist's per-object ``class_prob`` without the background column, so every detected nucleus has a class).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import tifffile
from cellpose_train_predict import read_sample  # the same HW3 reader as the Cellpose side (numpy + tifffile only)

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')  # stardist/csbdeep are written for Keras 2 (tf-keras)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def augment(x: np.ndarray, y: np.ndarray) -> tuple:
    """A random flip and 90-degree rotation of an image patch and its labels (StarDist's example augmenter)."""
    k = np.random.randint(4)
    x, y = np.rot90(x, k, axes=(0, 1)), np.rot90(y, k, axes=(0, 1))
    if np.random.rand() < 0.5:
        x, y = x[:, ::-1], y[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('data_root')
    parser.add_argument('out')
    parser.add_argument('--val', nargs='+', required=True, help='val folder names (the rest trains)')
    parser.add_argument('--budget-s', type=float, help='training wall-clock budget')
    parser.add_argument('--steps', type=int, help='train exactly this many batches instead of a budget')
    parser.add_argument('--patch', type=int, default=256)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--n-classes', type=int, help="multi-class mode: the tiles' classes 1..N (default: one class)")
    args = parser.parse_args()
    if (args.steps is None) == (args.budget_s is None):
        parser.error('give exactly one of --budget-s and --steps')

    import tensorflow as tf
    from csbdeep.utils import normalize
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D

    root, out = Path(args.data_root), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in (root / 'train').iterdir() if p.is_dir())
    train_names = [n for n in names if n not in set(args.val)]
    samples = [read_sample(root / 'train' / n, with_classes=True) for n in train_names]
    X = [normalize(img.astype(np.float32), 1, 99.8, axis=(0, 1)) for img, _, _ in samples]
    Y = [fill_label_holes(lab.astype(np.int32)) for _, lab, _ in samples]
    C = [cls for _, _, cls in samples]  # instance id -> class K (multi-class mode)
    if args.n_classes and any(not 1 <= k <= args.n_classes for cls in C for k in cls.values()):
        parser.error(f'{root}: a tile has a class file beyond class{args.n_classes}.tif (--n-classes {args.n_classes})')
    patch = min(args.patch, *(min(x.shape[:2]) for x in X))
    patch -= patch % 16  # StarDist's U-Net needs a multiple of 2^depth x grid
    print(f'stardist: {len(X)} train tiles, patches of {patch} px, tensorflow {tf.__version__}', flush=True)

    steps_per_epoch = 10
    budget_s = args.budget_s if args.budget_s is not None else float('inf')
    max_steps = args.steps if args.steps is not None else 10**9

    class Budget(tf.keras.callbacks.Callback):
        """Stop after ``budget_s`` seconds or ``max_steps`` batches, whichever comes first."""

        def __init__(self) -> None:
            super().__init__()
            self.start, self.steps = time.time(), 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.steps += 1
            if self.steps >= max_steps or time.time() - self.start >= budget_s:
                self.model.stop_training = True

    conf = Config2D(n_rays=32, grid=(2, 2), n_channel_in=3, use_gpu=False, train_patch_size=(patch, patch),
                    train_batch_size=args.batch_size, train_steps_per_epoch=steps_per_epoch,
                    n_classes=args.n_classes, train_tensorboard=False)  # TensorBoard is not in the peer's venv
    model = StarDist2D(conf, name='stardist', basedir=str(out))
    model.prepare_for_training()
    budget = Budget()
    model.callbacks.append(budget)
    # StarDist's fit needs validation data: two training tiles (not the held-out ones, which are the test)
    start = time.time()
    if args.n_classes:
        model.train(X, Y, classes=C, validation_data=(X[:2], Y[:2], C[:2]), augmenter=augment,
                    epochs=10**6 // steps_per_epoch, steps_per_epoch=steps_per_epoch)
    else:
        model.train(X, Y, validation_data=(X[:2], Y[:2]), augmenter=augment, epochs=10**6 // steps_per_epoch,
                    steps_per_epoch=steps_per_epoch)
    train_s = time.time() - start
    print(f'stardist: trained {budget.steps} batches of {args.batch_size} in {train_s:.0f} s', flush=True)

    timing = dict(train_s=train_s, iterations=budget.steps, batch_size=args.batch_size, patch=patch,
                  n_classes=args.n_classes, train_tiles=len(X), predict_s={})
    for name in args.val:
        img, _ = read_sample(root / 'train' / name)
        start = time.time()
        labels, details = model.predict_instances(normalize(img.astype(np.float32), 1, 99.8, axis=(0, 1)))
        timing['predict_s'][name] = time.time() - start
        # StarDist labels its objects 1..N in the order of details['prob']
        present = set(np.unique(labels[labels > 0]).tolist())
        scores = {i + 1: float(p) for i, p in enumerate(details['prob']) if i + 1 in present}
        tifffile.imwrite(out / f'{name}_labels.tif', labels.astype(np.uint32), compression='zlib')
        (out / f'{name}_scores.json').write_text(json.dumps(scores))
        if args.n_classes:  # class_prob: one row per object (as prob), column 0 the background
            classes = {i + 1: int(np.argmax(row[1:])) + 1 for i, row in enumerate(details['class_prob'])
                       if i + 1 in present}
            (out / f'{name}_classes.json').write_text(json.dumps(classes))
        print(f'stardist: {name}: {len(scores)} cells in {timing["predict_s"][name]:.1f} s', flush=True)
    (out / 'timing.json').write_text(json.dumps(timing, indent=1))


if __name__ == '__main__':
    main()
