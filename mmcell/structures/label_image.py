"""The one home of label images: instances (masks, RLEs or pixel lists) painted into one (H, W) id map.

Three overlap rules exist because three jobs need them, each named for its rule:

- :func:`label_image`: predictions; where instances overlap the higher score wins (label images of ``mmcell
  segment``, ``tools/predict.py --save-labels``, the pathology metrics);
- :func:`paint_instances`: annotations of the public data sets; the smaller instance wins (converters);
- :func:`instance_label_map`: ground truth as stored (no overlaps in the HW3 format; the later instance wins).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .rle import masks_to_rles, rle_runs, runs_to_pixels


def label_image(masks: Any, scores: Sequence[float], labels: Sequence[int], height: int, width: int,
                dtype: Optional[np.dtype] = None) -> tuple:
    """Paint instances into a label image; the higher score wins where instances overlap.

    Args:
        masks: ``(N, H, W)`` bool/uint8/float array or tensor, or N COCO RLEs.
        scores: ``(N,)`` scores.
        labels: ``(N,)`` class indices 0..K-1 (the model's ``bbox_label``).
        height, width: image size.
        dtype: label dtype (default uint16, uint32 when N > 65535).

    Returns:
        ``(label_img, class_map, order)``: label ids are 1..N by descending score, ``order[i]`` is the input
        index of label ``i + 1``; ``class_map`` holds ``label + 1`` (contest class id).
    """
    rles = masks_to_rles(masks, height, width)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(rles)
    if not (len(scores) == len(labels) == n):
        raise ValueError(f'{n} masks but {len(scores)} scores and {len(labels)} labels')
    dtype = dtype or (np.uint16 if n <= np.iinfo(np.uint16).max else np.uint32)
    order = np.argsort(-scores, kind='stable')
    prio = np.zeros(height * width, dtype=np.int64)  # column-major (COCO order); higher = better score
    if n:
        starts_l, lens_l, prio_l = [], [], []
        for rank, i in enumerate(order):
            run_starts, run_lens = rle_runs(rles[i])
            starts_l.append(run_starts)
            lens_l.append(run_lens)
            prio_l.append(np.full(len(run_lens), n - rank, dtype=np.int64))
        starts, lens, run_prio = np.concatenate(starts_l), np.concatenate(lens_l), np.concatenate(prio_l)
        if len(lens):
            np.maximum.at(prio, runs_to_pixels(starts, lens), np.repeat(run_prio, lens))
    prio = prio.reshape(width, height).T
    ids = np.where(prio > 0, n + 1 - prio, 0).astype(dtype)
    class_of_id = np.zeros(n + 1, dtype=np.uint8)
    class_of_id[1:] = labels[order] + 1
    return ids, class_of_id[ids], order


def instance_label_map(instances: Sequence[dict], height: int, width: int) -> np.ndarray:
    """(H, W) int32 map: 0 background, ``n + 1`` where instance ``n`` (its ``mask`` RLE) has pixels."""
    flat = np.zeros(height * width, np.int32)  # column-major, like COCO RLE
    for n, inst in enumerate(instances):
        starts, lengths = rle_runs(inst['mask'])
        for s, ln in zip(starts.tolist(), lengths.tolist()):
            flat[s:s + ln] = n + 1
    return flat.reshape(width, height).T


def paint_instances(pixels: Sequence[np.ndarray], height: int, width: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """Paint instances given as flat pixel indices into a label image; the smaller instance wins (converters).

    Args:
        pixels: per instance, the flat (row-major) indices of its pixels (may be empty).
        height, width: image size.

    Returns:
        ``(labels, kept, contested)``: (H, W) int32 labels with ids 1..M in input order of the kept instances,
        the input indices of the kept instances, and the number of pixels claimed by more than one instance.
    """
    flat = np.zeros(height * width, np.int32)
    sizes = np.array([len(p) for p in pixels], np.int64)
    contested = 0
    if len(pixels) and sizes.sum():
        cover = np.bincount(np.concatenate(pixels), minlength=height * width)
        contested = int(np.count_nonzero(cover > 1))
    # largest first, so smaller instances paint over them; among equal sizes the first-listed paints last (wins)
    for i in sorted(range(len(pixels)), key=lambda i: (-sizes[i], -i)):
        if sizes[i]:
            flat[pixels[i]] = i + 1
    present = np.zeros(len(pixels) + 1, bool)
    present[flat] = True
    kept = np.flatnonzero(present[1:])
    relabel = np.zeros(len(pixels) + 1, np.int32)
    relabel[kept + 1] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return relabel[flat].reshape(height, width), kept, contested


def instances_to_label_map(masks, scores: Sequence[float], labels: Sequence[int], height: int, width: int,
                           score_thr: float = 0.0) -> tuple:
    """Label image and the class (label + 1) of each label id of the instances scoring at least ``score_thr``.

    Returns:
        ``(label_map, class_of_id)``: (H, W) ids 1..N (0 = background), (N + 1,) class per id (index 0 = 0).
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    keep = np.flatnonzero(scores >= score_thr)
    if isinstance(masks, (list, tuple)):
        masks = [masks[i] for i in keep]
    else:
        masks = masks[keep] if len(keep) < len(scores) else masks
    ids, _, order = label_image(masks, scores[keep], labels[keep], height, width)
    class_of_id = np.concatenate([[0], labels[keep][order] + 1]).astype(np.int64)
    return ids, class_of_id
