"""A whole slide segmented as one image (no tiles, no seams): the like-for-like reference the seam tests and
``benchmarks/slide.py`` compare ``segment_slide`` with. Only for slides small enough to hold in memory."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from mmcell.apis.builder import build_test_pipeline, init_cell_model
from mmcell.apis.slide.merge import _resolve_rows
from mmcell.apis.slide.records import tile_record
from mmcell.apis.slide.run import detection_limits, model_mpp_of
from mmcell.datasets.slide.reader import SlideError, SlideReader
from mmcell.datasets.slide.tile_dataset import SlideTileDataset
from mmcell.datasets.slide.tiling import SlideTiling, plan_tiles
from mmcell.evaluation.submission import LABEL_SCORE_THR
from mmcell.utils import load_config, register_all_modules


def whole_image_cells(slide: str, config: Any, checkpoint: Optional[str], score_thr: float = LABEL_SCORE_THR,
                      region: Optional[Sequence[int]] = None, mpp: Optional[float] = None,
                      device: str = 'cpu') -> Tuple[np.ndarray, np.ndarray, Dict[int, float]]:
    """The reference for the seams: the model run once on a whole region (default: the whole slide) held in memory,
    read, resampled and post-processed (overlaps, duplicates) exactly as the tiles are, so that a difference from
    the slide path comes from tiling alone.

    Returns ``(ids, classes, scores)``: region-sized label image and class map (level-0 px) and ``id -> score``.
    """


    register_all_modules()
    reader = SlideReader(slide, mpp=mpp)
    if reader.mpp is None:
        raise SlideError(f'{slide}: no microns per pixel in its metadata; pass --mpp (e.g. --mpp 0.25)')
    cfg = load_config(config)
    model_mpp = model_mpp_of(cfg)
    rx, ry, rw, rh = region if region is not None else (0, 0, *reader.dimensions)
    side = int(math.ceil(max(rw, rh) * reader.mpp / model_mpp))
    tiling = plan_tiles(reader, model_mpp, side, 0, None, (rx, ry, rw, rh))
    model = init_cell_model(cfg, checkpoint, device=device, fast=True, mask_format='rle',
                            cfg_options=detection_limits(cfg, side))
    item = SlideTileDataset(reader, tiling, [0], build_test_pipeline(model.cfg, compose=False))[0]
    if 'error' in item:
        raise SlideError(item['error'])
    with torch.no_grad():
        out = model.test_step(dict(inputs=[item['inputs']], data_samples=[item['data_samples']]))[0].cpu()
    record, _ = tile_record(out, tiling, 0, score_thr, item['rgb'])
    return resolved_label_image(tiling, lambda t: record)


def resolved_label_image(tiling: SlideTiling,
                         read_record: Callable[[int], bytes]) -> Tuple[np.ndarray, np.ndarray, Dict[int, float]]:
    """The label image, class map and ``id -> score`` of ``tiling.region`` from the tile records
    (``read_record(tile_id)`` -> :func:`tile_record` bytes) after the merge's overlap and duplicate rules
    (:func:`_resolve_rows`), in memory."""
    rx, ry, rw, rh = tiling.region
    ids = np.zeros((rh, rw), np.uint32)
    classes = np.zeros((rh, rw), np.uint8)
    scores = {}
    for cells in _resolve_rows(tiling, read_record):
        for c in cells:
            h, w = c.mask.shape
            ids[c.y1 - ry:c.y1 - ry + h, c.x1 - rx:c.x1 - rx + w][c.mask] = c.id
            classes[c.y1 - ry:c.y1 - ry + h, c.x1 - rx:c.x1 - rx + w][c.mask] = c.label + 1
            scores[c.id] = c.score
    return ids, classes, scores
