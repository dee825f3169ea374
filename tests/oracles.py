"""Stand-in models for the slide path's tests: the ground truth of a synthetic slide, tile by tile."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import torch
from conftest import quickstart_config
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmcell.synthetic.slide import read_ground_truth


class GroundTruthOracle(torch.nn.Module):
    """The ground truth visible in each tile, cut at the tile border as a real model sees it: one detection per
    nucleus, its class from the slide's class image. Subclasses say how a nucleus is scored (:meth:`score`) and may
    add per-detection fields (:meth:`extra`)."""

    def __init__(self, gt_path: str, classes: tuple, config: str | None = None) -> None:
        super().__init__()
        self.ids, self.classes = read_ground_truth(gt_path)
        self.area = np.bincount(self.ids.ravel())
        self.cfg = Config.fromfile(config or quickstart_config())
        self.dataset_meta = dict(classes=tuple(classes))

    def score(self, key: int, mask: np.ndarray) -> float:
        raise NotImplementedError

    def extra(self, pred: InstanceData, keys: list, labels: list) -> None:
        """Add fields to ``pred``; the default adds none."""

    def test_step(self, data: dict) -> list:
        outs = []
        for sample in data['data_samples']:
            x, y = sample.tile_xy
            h, w = sample.ori_shape
            ids = self.ids[y:y + h, x:x + w]
            keys = [int(v) for v in np.unique(ids) if v]
            masks = [ids == k for k in keys]
            boxes = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] for ys, xs in (np.nonzero(m) for m in masks)]
            labels = [int(self.classes[y:y + h, x:x + w][m][0]) - 1 for m in masks]
            pred = InstanceData()
            pred.bboxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
            pred.scores = torch.tensor([self.score(k, m) for k, m in zip(keys, masks)], dtype=torch.float32)
            pred.labels = torch.tensor(labels, dtype=torch.long)
            self.extra(pred, keys, labels)
            pred.masks = [mask_util.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
            out = sample.clone()
            out.pred_instances = pred
            outs.append(out)
        return outs
