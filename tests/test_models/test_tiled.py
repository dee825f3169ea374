"""Tiled inference: one tile == whole-image inference; big images stay within bounded memory."""
from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest
import torch
from tiny_models import build, dense_masks, make_sample_batch, mask_iou, tiny_model_cfg

from mmcell.models import RLEMasks, TiledDetector
from mmcell.models.tiled import tile_cores, tile_starts

pytest.importorskip('mmcv.ops')


def test_tile_layout_covers_and_partitions():
    for length, tile, overlap in [(100, 100, 10), (1000, 256, 64), (257, 128, 32)]:
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + min(tile, length) == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
        cores = tile_cores(starts, tile, length)
        assert cores[0][0] == 0 and cores[-1][1] == length
        assert all(a[1] == b[0] for a, b in zip(cores, cores[1:]))  # cores partition the image
        assert all(s <= lo and hi <= s + tile for s, (lo, hi) in zip(starts, cores))


def test_one_tile_equals_whole_image():
    model = build(tiny_model_cfg(dets=80))
    batch = make_sample_batch(80, 112, scale=1.5)
    with torch.no_grad():
        whole = model.test_step(copy.deepcopy(batch))[0].pred_instances
        tiled = TiledDetector(model, tile_size=256, overlap=32, mask_format='bitmap').predict_tiled(
            batch['inputs'][0], batch['data_samples'][0]).pred_instances
    assert len(whole) > 20 and len(tiled) == len(whole)
    torch.testing.assert_close(tiled.bboxes, whole.bboxes)
    assert torch.equal(tiled.labels, whole.labels)
    assert mask_iou(dense_masks(tiled.masks), dense_masks(whole.masks)).min() == 1.0


def test_tiles_merge_like_whole_image_on_trained_model(trained_quickstart):
    """Tiles smaller than the image find the same nuclei as whole-image inference, once each."""
    import glob
    import os.path as osp

    from mmcell.apis.inference import init_cell_model
    from mmcell.datasets.hw3_format import read_image_rgb

    model = init_cell_model(trained_quickstart.config, trained_quickstart.checkpoint)
    paths = sorted(glob.glob(osp.join(trained_quickstart.data_root, 'test_release', '*.tif')))
    rgb = max((read_image_rgb(p) for p in paths), key=lambda a: a.shape[0] * a.shape[1])
    h, w = rgb.shape[:2]
    batch = make_sample_batch(h, w, img=rgb[..., ::-1].transpose(2, 0, 1))
    tile = max(64, (min(h, w) // 2 + 31) // 32 * 32)
    with torch.no_grad():
        whole = model.test_step(copy.deepcopy(batch))[0].pred_instances
        tiled = TiledDetector(model, tile_size=tile, overlap=48, mask_format='rle').test_step(
            copy.deepcopy(batch))[0].pred_instances
    assert isinstance(tiled.masks, RLEMasks) and tiled.masks.shape[1:] == (h, w)
    # the confident part of the whole-image result (a 1-epoch model: at most 0.3, at least its top 20)
    thr = min(0.3, float(whole.scores.sort(descending=True).values[min(19, len(whole) - 1)]))
    whole, tiled = whole[whole.scores >= thr], tiled[tiled.scores >= thr]
    assert len(whole) >= 5 and len(tiled) >= 1
    a, b = dense_masks(whole.masks), dense_masks(tiled.masks)
    inter = np.einsum('ihw,jhw->ij', a.astype(np.float32), b.astype(np.float32))
    union = a.sum((1, 2))[:, None] + b.sum((1, 2))[None] - inter
    iou = inter / np.maximum(union, 1)
    assert (iou.max(1) >= 0.5).mean() >= 0.85  # whole-image nuclei found by the tiles
    # no duplicates: no nucleus is claimed by two tiled instances
    bb = np.triu(np.einsum('ihw,jhw->ij', b.astype(np.float32), b.astype(np.float32)), 1)
    area = b.sum((1, 2))
    overlap = bb / np.maximum(np.minimum(area[:, None], area[None]), 1)
    assert (overlap > 0.5).sum() <= max(1, len(b) // 20)


def _rss_bytes() -> int:
    with open('/proc/self/statm') as fh:
        return int(fh.read().split()[1]) * 4096


def test_bounded_memory_on_2500x735_at_2x():
    model = build(tiny_model_cfg(dets=1000, width=8))
    h, w = 735, 2500
    batch = make_sample_batch(h, w, scale=2.0)
    tiled = TiledDetector(model, tile_size=1024, overlap=64, mask_format='rle')
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.01)

    base = _rss_bytes()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        with torch.no_grad():
            out = tiled.test_step(batch)[0].pred_instances
    finally:
        stop.set()
        thread.join()
    print(f'peak RSS growth {(peak[0] - base) / 1e9:.2f} GB')
    assert len(out) == 1000 and out.masks.shape == (1000, h, w)
    dense_bytes = 1000 * h * w  # what dense bool masks alone would take
    assert peak[0] - base < 1.2e9 < dense_bytes, f'peak grew by {(peak[0] - base) / 1e9:.2f} GB'
