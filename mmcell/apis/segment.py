"""``mmcell.apis.segment``: images in, label images + cell tables out (the API behind ``mmcell segment``).

Builds on :mod:`mmcell.apis.inference` (model loading, test pipeline, predictions in original pixels) and adds
the inference variants of :mod:`mmcell.models`: the fast CPU path, mask TTA and tiled inference.
"""
from __future__ import annotations

import copy
import glob
import os
import os.path as osp
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config

from .exporters import DEFAULT_SCORE_THR, CellSegmentation, cell_table, label_image, save_labels

IMAGE_EXTS = ('.tif', '.tiff', '.png', '.jpg', '.jpeg', '.bmp')
PathLike = Union[str, os.PathLike]


def build_inference_model(config: Union[PathLike, Config], checkpoint: Optional[str], device: str = 'cpu',
                          cfg_options: Optional[dict] = None, fast: bool = True, mask_format: str = 'rle',
                          tta: bool = False, tta_scales: Sequence[float] = (1.0, ),
                          tta_flips: Sequence[str] = ('none', 'horizontal', 'vertical'),
                          tta_rotations: Sequence[int] = (0, ), tile: Optional[int] = None,
                          tile_overlap: Optional[int] = None, precision: str = 'auto') -> torch.nn.Module:
    """A model for :func:`mmcell.apis.inference.predict_images`, optionally fast / with TTA / tiled.

    Args:
        config, checkpoint, device, cfg_options: as :func:`mmcell.apis.inference.init_cell_model`.
        fast: switch a Mask R-CNN to :mod:`mmcell.models.fast_mask_rcnn` (same masks, faster on CPU); other
            detectors are left as they are.
        mask_format: ``'rle'`` (memory ~ boxes) or ``'bitmap'`` masks in the predictions.
        tta: wrap in :class:`mmcell.models.CellTTAModel` with ``tta_scales`` x ``tta_flips`` x ``tta_rotations``.
        tile: wrap in :class:`mmcell.models.TiledDetector` with this tile size (network-input pixels).
        tile_overlap: overlap between tiles (default ``min(128, tile // 4)``).
        precision: mask head precision of the fast path: ``'fp32'``, ``'bf16'``, ``'int8'`` or ``'auto'`` (bf16
            on CPUs with native AVX512-BF16, else fp32: it left AP50 unchanged on the synthetic test split, see
            benchmarks/RESULTS.md; without native support bf16 would be slower).

    Returns:
        a module with ``test_step``, ``cfg`` (its test pipeline is the one to use) and ``dataset_meta``.
    """
    from mmcell.models import CellTTAModel, TiledDetector, fast_inference_model_cfg
    from mmcell.models.tta import tta_pipeline_of

    from ..utils import load_config
    from .inference import init_cell_model

    if tta and tile:
        raise ValueError('TTA and tiled inference cannot be combined (tile big images, or use TTA)')
    cfg = load_config(config, cfg_options)
    if precision == 'auto':
        native_bf16 = str(device).startswith('cpu') and getattr(torch.cpu, '_is_avx512_bf16_supported', None)
        precision = 'bf16' if native_bf16 and torch.cpu._is_avx512_bf16_supported() else 'fp32'
    if fast:
        try:
            cfg.model = fast_inference_model_cfg(cfg.model, precision=precision, mask_format=mask_format)
        except ValueError:
            pass  # not a Mask R-CNN: upstream inference
    model = init_cell_model(cfg, checkpoint, device=device)
    wrapped: Optional[torch.nn.Module] = None
    if tta:
        wrapped = CellTTAModel(module=model, flips=list(tta_flips), rotations=list(tta_rotations),
                               tta_cfg=dict(mask_format=mask_format,
                                            max_per_img=int(model.roi_head.test_cfg.get('max_per_img', 1000)),
                                            mask_thr_binary=float(model.roi_head.test_cfg.mask_thr_binary)))
        wrapped.cfg = copy.deepcopy(model.cfg)
        pipeline = model.cfg.test_dataloader.dataset.get('pipeline') or model.cfg.get('test_pipeline')
        wrapped.cfg.test_dataloader.dataset.pipeline = tta_pipeline_of(pipeline, tta_scales)
    elif tile:
        overlap = min(128, tile // 4) if tile_overlap is None else tile_overlap
        wrapped = TiledDetector(model, tile_size=tile, overlap=overlap, mask_format=mask_format)
        wrapped.cfg = model.cfg
    if wrapped is None:
        return model
    wrapped.dataset_meta = model.dataset_meta
    return wrapped.to(device).eval()


def find_images(inputs: Union[PathLike, Sequence[PathLike]]) -> List[str]:
    """Image files from files and folders (a folder contributes its images, sorted)."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    paths: List[str] = []
    for item in items:
        item = str(item)
        if osp.isdir(item):
            paths += sorted(p for p in glob.glob(osp.join(item, '*')) if p.lower().endswith(IMAGE_EXTS))
        elif osp.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f'{item}: no such image or folder')
    if not paths:
        raise FileNotFoundError(f'{", ".join(map(str, items))}: no images found')
    return paths


def _read_rgb(path: str) -> Optional[np.ndarray]:
    from mmcell.datasets.hw3_format import read_image_rgb

    if path.lower().endswith(('.tif', '.tiff')):
        return read_image_rgb(path)
    import mmcv

    img = mmcv.imread(path, channel_order='rgb')
    return None if img is None else img


def segmentation_of(sample: Any, image_path: str, class_names: Sequence[str] = (), score_thr: float = DEFAULT_SCORE_THR,
                    image: Optional[np.ndarray] = None) -> CellSegmentation:
    """Label image, class map and cell table of one prediction (``DetDataSample`` in original pixels)."""
    pred = sample.pred_instances
    keep = pred.scores >= score_thr
    pred = pred[keep] if not bool(keep.all()) else pred
    height, width = (int(v) for v in sample.ori_shape[:2])
    ids, classes, order = label_image(pred.masks, pred.scores.cpu().numpy(), pred.labels.cpu().numpy(), height,
                                      width)
    table = cell_table(ids, order, pred.scores.cpu().numpy(), pred.labels.cpu().numpy(), image, class_names)
    return CellSegmentation(image_path=image_path, labels=ids, classes=classes, table=table)


def segment(images: Union[PathLike, Sequence[PathLike]], config: Union[PathLike, Config], checkpoint: str,
            out_dir: Optional[str] = None, device: str = 'cpu', score_thr: float = DEFAULT_SCORE_THR, tta: bool = False,
            tile: Optional[int] = None, fast: bool = True, cfg_options: Optional[dict] = None,
            progress: bool = True, **model_kwargs) -> List[CellSegmentation]:
    """Segment cells: per image a label image, a class map and a table of cells.

    Args:
        images: image files and/or folders.
        config: mmcell config (file or ``Config``).
        checkpoint: trained weights (``.pth``).
        out_dir: if given, write ``<stem>_labels.tif``, ``<stem>_classes.tif`` and ``<stem>_cells.csv`` there.
        device: ``'cpu'`` or ``'cuda:0'``.
        score_thr: instances scoring below are left out.
        tta, tile, fast, cfg_options, **model_kwargs: see :func:`build_inference_model`.
        progress: show a progress bar.

    Returns:
        one :class:`mmcell.apis.exporters.CellSegmentation` per image (``files`` set when ``out_dir`` is given).
    """
    from .inference import predict_images

    paths = find_images(images)
    model = build_inference_model(config, checkpoint, device=device, cfg_options=cfg_options, fast=fast, tta=tta,
                                  tile=tile, **model_kwargs)
    names = tuple((model.dataset_meta or {}).get('classes', ()))
    results = []
    for path in paths:  # one at a time: only one image's predictions are held in memory
        sample = predict_images(model, [path], progress=False)[0]
        seg = segmentation_of(sample, path, names, score_thr, _read_rgb(path))
        if out_dir is not None:
            save_labels(seg, out_dir, model.dataset_meta)
        if progress:
            print(f'{path}: {len(seg.table)} cells' + (f' -> {seg.files["labels"]}' if seg.files else ''))
        results.append(seg)
    return results


class LabelSaver(torch.nn.Module):
    """Wrap an inference model so every prediction also writes its label image, class map and cell table.

    Used by ``tools/predict.py --save-labels DIR``: the submission and the label files come from the same
    forward pass. ``cfg`` and ``dataset_meta`` are the wrapped model's.
    """

    def __init__(self, model: torch.nn.Module, out_dir: str, score_thr: float = DEFAULT_SCORE_THR) -> None:
        super().__init__()
        self.model, self.out_dir, self.score_thr = model, out_dir, score_thr
        self.cfg, self.dataset_meta = model.cfg, model.dataset_meta

    def test_step(self, data) -> list:
        outputs = self.model.test_step(data)
        names = tuple((self.dataset_meta or {}).get('classes', ()))
        for out in outputs:
            path = out.metainfo.get('img_path', f"image_{out.metainfo.get('img_id', 0)}.tif")
            save_labels(segmentation_of(out, path, names, self.score_thr, _read_rgb(path)), self.out_dir,
                        self.dataset_meta)
        return outputs
