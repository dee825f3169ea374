"""Tiled inference: one tile == whole-image inference; big images stay within bounded memory."""
from __future__ import annotations

import copy
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_models import build, dense_masks, make_sample_batch, mask_iou, tiny_model_cfg

from mmcell.models import TiledDetector
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


class _OracleTiles(TiledDetector):
    """A perfect per-tile detector: every object visible in a tile, clipped to the tile as a real one sees it."""

    def __init__(self, objects, **kwargs):
        super().__init__(module=torch.nn.Identity(), **kwargs)
        self.objects = objects  # (n, 4) boxes in image pixels; scores 1 / (1 + index)

    def detect_tile(self, img, x0=0, y0=0):
        th, tw = img.shape[-2:]
        boxes = self.objects - torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
        clipped = torch.stack([boxes[:, 0].clamp(0, tw), boxes[:, 1].clamp(0, th), boxes[:, 2].clamp(0, tw),
                               boxes[:, 3].clamp(0, th)], 1)
        seen = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1]) / area
        scores = visible / (1 + torch.arange(len(boxes)))  # a cut object scores lower
        n = int(seen.sum())
        return clipped[seen], scores[seen], torch.zeros(n, dtype=torch.long), torch.ones(n, 28, 28)


def test_tiles_keep_each_object_once_and_whole():
    """Objects crossing tile borders come out once, with their full box (overlap >= object size)."""
    g = torch.Generator().manual_seed(0)
    h, w, tile, overlap = 300, 420, 128, 48
    xy = torch.rand(150, 2, generator=g) * torch.tensor([w - 40.0, h - 40.0])
    size = 8 + torch.rand(150, 2, generator=g) * 32  # up to 40 px < overlap
    objects = torch.cat([xy, xy + size], 1).round()
    model = _OracleTiles(objects, tile_size=tile, overlap=overlap, nms_iou=0.99, max_per_img=1000,
                         mask_format='rle')
    model.module.roi_head = SimpleNamespace(test_cfg=_Cfg(max_per_img=1000, mask_thr_binary=0.5))
    batch = make_sample_batch(h, w)
    out = model.predict_tiled(batch['inputs'][0], batch['data_samples'][0]).pred_instances
    crossing = ((objects[:, 0] // 80) != ((objects[:, 2] - 1) // 80)).sum()
    assert crossing > 10  # the layout really cuts objects
    assert len(out) == len(objects)
    got = out.bboxes[torch.argsort(out.scores, descending=True)]
    torch.testing.assert_close(got, objects)  # each object once, whole (score order = object order)
    assert out.masks.shape == (len(objects), h, w)
    areas = ((objects[:, 2] - objects[:, 0]) * (objects[:, 3] - objects[:, 1])).numpy()
    assert np.array_equal(np.sort(dense_masks(out.masks).sum((1, 2))), np.sort(areas.astype(int)))


class _Cfg(dict):
    """A test_cfg stand-in with attribute access (ConfigDict-like)."""

    __getattr__ = dict.get


def _rss_bytes() -> int:
    with open('/proc/self/statm') as fh:
        return int(fh.read().split()[1]) * 4096


@pytest.mark.slow
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


def test_tiled_test_config_runs_with_tools_test(trained_quickstart, tmp_path):
    """``model = dict(type='TiledDetector', module=...)`` in a config: tools/test.py runs it and scores it."""
    import pickle
    import sys

    from conftest import run_tool

    tiled_cfg = tmp_path / 'tiled.py'
    tiled_cfg.write_text(f'_base_ = [{trained_quickstart.config!r}]\n'
                         "model = dict(_delete_=True, type='TiledDetector', module=_base_.model, tile_size=96, "
                         'overlap=32)\n')
    out = tmp_path / 'preds.pkl'
    proc = run_tool(sys.executable, 'tools/test.py', str(tiled_cfg), trained_quickstart.checkpoint,
                    '--work-dir', str(tmp_path / 'work'), '--out', str(out),
                    '--cfg-options', 'test_dataloader.dataset.indices=1')  # one image (192x248) keeps it quick
    log = proc.stdout + proc.stderr
    assert 'coco/segm_mAP_50' in log and 'TiledDetector' in log
    with open(out, 'rb') as fh:
        preds = pickle.load(fh)
    assert len(preds) and all(all(tuple(m['size']) == tuple(p['ori_shape']) for m in p['pred_instances']['masks'])
                              for p in preds)
    assert any(max(p['ori_shape']) > 96 for p in preds)  # some images really were cut into tiles
