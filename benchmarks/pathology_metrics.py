"""Pathology metrics time (AJI, AJI+, PQ, detection F1): mmcell's vectorised functions vs a per-instance
(HoVer-Net style) reference, same run, same figures checked. Prints a table; ``--append FILE`` appends it to FILE
(benchmarks/RESULTS.md), nothing is written otherwise.

The reference (:func:`reference_metrics`) is the straightforward HoVer-Net way (``metrics/stats_utils.py``): one
full-image mask per instance, then per GT instance a loop over the predictions it touches, summing full-image
masks; mmcell's functions build every pairwise intersection from one contingency table
(:mod:`mmcell.evaluation.functional.instance_overlap`). Both compute the same figures (checked here every run, and in
the tests); the table gives seconds per image and the speed-up.

Usage::

    python benchmarks/pathology_metrics.py [--size 1000] [--instances 500] [--images 3]
        [--append benchmarks/RESULTS.md]

Images are synthetic dense label maps (``--instances`` touching nuclei in a ``--size`` square, the density of a
40x MoNuSeg tile); the prediction is the GT shifted by 2 px with 10 % of nuclei split, 10 % dropped, pairs merged
and false positives added, so every branch of the metrics (splits, merges, misses) is exercised.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from typing import Dict

import numpy as np


# ------------------------------------------------------------------------------------- per-instance reference
def _masks(labels: np.ndarray) -> dict:
    return {int(i): labels == i for i in np.unique(labels) if i}


def _pairwise(true: np.ndarray, pred: np.ndarray):
    true_masks, pred_masks = _masks(true), _masks(pred)
    t_ids, p_ids = sorted(true_masks), sorted(pred_masks)
    inter = np.zeros((len(t_ids), len(p_ids)))
    union = np.zeros((len(t_ids), len(p_ids)))
    p_index = {p: j for j, p in enumerate(p_ids)}
    for i, t in enumerate(t_ids):
        t_mask = true_masks[t]
        for p in np.unique(pred[t_mask]):
            if p == 0:
                continue
            p_mask = pred_masks[int(p)]
            total = int(t_mask.sum()) + int(p_mask.sum())
            inter[i, p_index[int(p)]] = np.logical_and(t_mask, p_mask).sum()
            union[i, p_index[int(p)]] = total - inter[i, p_index[int(p)]]
    t_area = np.array([true_masks[t].sum() for t in t_ids], np.float64)
    p_area = np.array([pred_masks[p].sum() for p in p_ids], np.float64)
    return inter, union, t_area, p_area


def reference_metrics(true: np.ndarray, pred: np.ndarray, match_iou: float = 0.5) -> Dict[str, float]:
    """AJI, AJI+, DQ/SQ/PQ and detection P/R/F1 the HoVer-Net way (per-instance full-image masks)."""
    from scipy.optimize import linear_sum_assignment

    inter, union, t_area, p_area = _pairwise(true, pred)
    n_t, n_p = inter.shape
    iou_eps = inter / (union + 1.0e-6)
    out = {}
    # AJI: each GT to its best prediction (reuse allowed)
    if n_t and n_p:
        best = np.argmax(iou_eps, axis=1)
        paired = np.flatnonzero(iou_eps[np.arange(n_t), best] > 0)
        best = best[paired]
    else:
        paired = best = np.zeros(0, np.int64)
    i_sum, u_sum = inter[paired, best].sum(), union[paired, best].sum()
    u_sum += t_area[np.setdiff1d(np.arange(n_t), paired)].sum() + p_area[np.setdiff1d(np.arange(n_p), best)].sum()
    out['aji'] = i_sum / u_sum if u_sum else float('nan')
    # AJI+: Munkres one-to-one
    rows, cols = linear_sum_assignment(-iou_eps) if n_t and n_p else (np.zeros(0, int), np.zeros(0, int))
    keep = iou_eps[rows, cols] > 0
    rows, cols = rows[keep], cols[keep]
    i_sum, u_sum = inter[rows, cols].sum(), union[rows, cols].sum()
    u_sum += t_area[np.setdiff1d(np.arange(n_t), rows)].sum() + p_area[np.setdiff1d(np.arange(n_p), cols)].sum()
    out['aji_plus'] = i_sum / u_sum if u_sum else float('nan')
    # PQ at IoU > 0.5 (unique pairs)
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    tp_r, tp_c = np.nonzero(iou > match_iou)
    tp, fp, fn = len(tp_r), n_p - len(tp_r), n_t - len(tp_r)
    denom = tp + 0.5 * fp + 0.5 * fn
    out['dq'] = tp / denom if denom else float('nan')
    out['sq'] = iou[tp_r, tp_c].sum() / (tp + 1.0e-6) if denom else float('nan')
    out['pq'] = out['dq'] * out['sq']
    out['precision'] = tp / (tp + fp) if tp + fp else float('nan')
    out['recall'] = tp / (tp + fn) if tp + fn else float('nan')
    out['f1'] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float('nan')
    return out


# ------------------------------------------------------------------------------------------------ mmcell path
def mmcell_metrics(true: np.ndarray, pred: np.ndarray, match_iou: float = 0.5) -> Dict[str, float]:
    """The same figures from mmcell's vectorised functions (one contingency table for all of them)."""
    from mmcell.evaluation.functional.aji import aji_from_overlap, aji_plus_from_overlap
    from mmcell.evaluation.functional.detection import detection_scores
    from mmcell.evaluation.functional.instance_overlap import instance_overlap
    from mmcell.evaluation.functional.pq import pq_stats

    ov = instance_overlap(true, pred)
    stats = pq_stats(ov, match_iou)
    return dict(aji=aji_from_overlap(ov), aji_plus=aji_plus_from_overlap(ov), dq=stats.dq, sq=stats.sq,
                pq=stats.pq, **detection_scores(stats.tp, stats.fp, stats.fn))


# ------------------------------------------------------------------------------------------------------- data
def dense_pair(size: int, instances: int, seed: int = 0):
    """A dense GT label map (touching nuclei, ids non-contiguous and > 255) and a flawed prediction of it."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, size, (instances, 2))
    # nearest-centre (Voronoi) cells cut by a disc of radius ~ nucleus size: touching, irregular nuclei
    seeds = np.zeros((size, size), np.int32)
    seeds[centres[:, 0].astype(int), centres[:, 1].astype(int)] = np.arange(1, instances + 1)
    dist, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    radius = 0.5 * size / np.sqrt(instances)
    owner = np.where(dist < radius * rng.uniform(0.8, 1.2, (size, size)) ** 0.1, seeds[iy, ix], 0)
    ids = rng.choice(np.arange(1, 20 * instances), instances, replace=False)
    true = np.concatenate([[0], ids])[owner]
    pred = np.roll(owner, (2, 1), axis=(0, 1)).astype(np.int64)
    n = instances
    split = rng.choice(np.arange(1, n + 1), n // 10, replace=False)
    cols = np.arange(size)[None, :]
    for k, i in enumerate(split):  # split: the right part of the nucleus gets a new id
        where = pred == i
        if where.any():
            mid = int(np.median(np.nonzero(where)[1]))
            pred[where & (cols > mid)] = n + 1 + k
    pred[np.isin(pred, rng.choice(np.arange(1, n + 1), n // 10, replace=False))] = 0  # misses
    for a, b in rng.choice(np.arange(1, n + 1), (n // 20, 2), replace=False):  # merges
        pred[pred == b] = a
    for k, (y, x) in enumerate(rng.uniform(10, size - 10, (n // 10, 2))):  # false positives in the background
        y, x = int(y), int(x)
        patch = pred[y - 4:y + 4, x - 4:x + 4]
        patch[patch == 0] = 2 * n + k
    return true, pred


def runner_seconds(true: np.ndarray, pred: np.ndarray) -> float:
    """Seconds of ``CellPathologyMetric.process`` on one image as the val loop hands it over: the prediction as
    an (N, H, W) bool mask tensor with scores (painted by ``label_image``), the GT as RLE ``instances``."""
    import pycocotools.mask as mask_util
    import torch

    from mmcell.evaluation.metrics import CellPathologyMetric

    ids = np.unique(pred)[1:]
    masks = torch.from_numpy(pred[None] == ids[:, None, None])
    instances = []
    for i in np.unique(true)[1:]:
        rle = mask_util.encode(np.asfortranarray((true == i).astype(np.uint8)))
        instances.append(dict(mask=rle, bbox_label=0))
    sample = dict(ori_shape=true.shape, img_id=0, instances=instances,
                  pred_instances=dict(masks=masks, scores=torch.linspace(1.0, 0.6, len(ids)),
                                      labels=torch.zeros(len(ids), dtype=torch.int64)))
    metric = CellPathologyMetric()
    start = time.perf_counter()
    metric.process({}, [sample])
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=1000, help='image side (px)')
    parser.add_argument('--instances', type=int, default=500, help='nuclei per image')
    parser.add_argument('--images', type=int, default=3, help='images to time')
    parser.add_argument('--append', help='append the result table to this markdown file (benchmarks/RESULTS.md)')
    parser.add_argument('--machine', default=f'{platform.machine()} {os.cpu_count()}-core CPU',
                        help='machine description for the results file')
    args = parser.parse_args(argv)

    mmcell_metrics(*dense_pair(64, 8, seed=99))  # warm-up: first-call imports (scipy.sparse) are not timed
    t_ref, t_new, t_run = [], [], []
    worst = 0.0
    for i in range(args.images):
        true, pred = dense_pair(args.size, args.instances, seed=i)
        start = time.perf_counter()
        ref = reference_metrics(true, pred)
        t_ref.append(time.perf_counter() - start)
        start = time.perf_counter()
        new = mmcell_metrics(true, pred)
        t_new.append(time.perf_counter() - start)
        t_run.append(runner_seconds(true, pred))
        diff = max(abs(ref[k] - new[k]) for k in ref)
        worst = max(worst, diff)
        print(f'image {i}: reference {t_ref[-1]:.2f} s, mmcell {t_new[-1]:.3f} s (in the runner, painting the '
              f'masks too: {t_run[-1]:.2f} s), max |difference| {diff:.2e}  '
              + ', '.join(f'{k} {v:.4f}' for k, v in new.items()))
    if worst > 1e-9:
        raise SystemExit(f'mmcell and the reference disagree by {worst:.2e}')
    ref_s, new_s, run_s = float(np.mean(t_ref)), float(np.mean(t_new)), float(np.mean(t_run))
    table = ('| metric set (AJI, AJI+, PQ, P/R/F1) | s / image | vs reference |\n|---|---|---|\n'
             f'| per-instance reference (HoVer-Net style) | {ref_s:.2f} | 1.0x |\n'
             f'| mmcell (one contingency table) | {new_s:.3f} | {ref_s / new_s:.0f}x |\n'
             f'| `CellPathologyMetric.process`: {args.instances} dense (N, H, W) masks + GT RLEs painted by '
             f'`label_image`, then all figures | {run_s:.2f} | -- |')
    print(table)
    if args.append:
        cmd = 'python benchmarks/pathology_metrics.py ' + ' '.join(
            f'--{k} {getattr(args, k)}' for k in ('size', 'instances', 'images'))
        block = (f'## Pathology metrics: {args.size}x{args.size} label maps, {args.instances} nuclei '
                 f'({datetime.date.today()}, {args.machine})\n`{cmd}` -- {args.images} images, figures equal to '
                 f'the reference (max |difference| {worst:.1e}); goal <= 2 s per image. The reference builds the '
                 'per-instance masks once for all figures (HoVer-Net builds them once per function, 3x).\n\n'
                 f'{table}\n')
        from mmcell.utils.fileio import write_results_section

        write_results_section(args.append, block)
        print(f'wrote its section of {args.append}')


if __name__ == '__main__':
    main()
