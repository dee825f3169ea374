"""Tiles of a slide as a torch ``Dataset`` run by DataLoader workers: each tile read, resampled and put through the
config's test pipeline (its resize made the identity: ``model_mpp`` is the resolution of the network input); workers
die with their main process."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import Compose

from mmcell.datasets.slide.reader import SlideError, SlideReader
from mmcell.datasets.slide.tiling import SlideTiling, read_tile


class SlideTileDataset(torch.utils.data.Dataset):
    """Tiles of a slide through a model's test pipeline, for a DataLoader (reading happens in its workers).

    Each item is ``dict(tile_id, inputs, data_samples, rgb)`` where the sample's ``ori_shape`` is the tile's
    level-0 size (so the detector rescales boxes and masks to level-0 pixels) and ``rgb`` is the model-resolution
    tile (for intensity measurements); or ``dict(tile_id, error)`` with a one-line :class:`SlideError` message.

    Args:
        reader: the slide (pickled without its file handle; each worker re-opens it).
        tiling: the layout from :func:`plan_tiles`.
        tile_ids: which tiles to read.
        pipeline: the model's test pipeline config (its loading step is replaced by an in-memory one).
    """

    def __init__(self, reader: SlideReader, tiling: SlideTiling, tile_ids: Sequence[int],
                 pipeline: Sequence[dict]) -> None:
        self.reader, self.tiling, self.tile_ids = reader, tiling, list(tile_ids)
        # Tiles are read at the model's mpp already: the config's resize (an image-size rule for the training
        # data) becomes the identity, and the image comes from memory.
        self.pipeline_cfg = [dict(type='mmdet.Resize', scale_factor=1.0, keep_ratio=True)
                             if str(p.get('type', '')).endswith('Resize') else dict(p) for p in pipeline]
        self.pipeline_cfg[0] = dict(type='mmdet.LoadImageFromNDArray')
        self._pipeline = None

    def __len__(self) -> int:
        return len(self.tile_ids)

    def __getitem__(self, index: int) -> dict:

        tile_id = self.tile_ids[index]
        try:
            rgb = read_tile(self.reader, self.tiling, tile_id)
        except SlideError as err:
            return dict(tile_id=tile_id, error=str(err))
        if self._pipeline is None:
            self._pipeline = Compose(self.pipeline_cfg)
        x, y, w, h = self.tiling.rect(tile_id)
        data = self._pipeline(dict(img=np.ascontiguousarray(rgb[..., ::-1]), img_id=tile_id,
                                   img_path=self.reader.path))
        sample = data['data_samples']
        img_h, img_w = sample.img_shape[:2]
        sample.set_metainfo(dict(ori_shape=(h, w), scale_factor=(img_w / w, img_h / h), tile_xy=(x, y)))
        return dict(tile_id=tile_id, inputs=data['inputs'], data_samples=sample, rgb=rgb)


def collate_tiles(batch: List[dict]) -> List[dict]:
    """DataLoader ``collate_fn``: keep the items as they are (the model's data preprocessor batches them)."""
    return batch


def die_with_parent(worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: on Linux, the worker is killed when its parent dies.

    A worker whose main process was killed (``kill -9``, a job scheduler) while the worker was blocked handing over a
    tile would otherwise live on as an orphan holding a slide and a pipeline in memory.
    """

    if sys.platform.startswith('linux'):
        try:
            ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def worker_count(requested: Optional[int] = None) -> int:
    """DataLoader workers: ``requested``, else 1 (reading overlaps compute; more workers only compete for cores)."""
    if requested is not None:
        return max(0, int(requested))
    return 1 if (os.cpu_count() or 1) > 1 else 0
