"""``mmcell.apis.segment``: images in, label images + cell tables out (the API behind ``mmcell segment``).

Builds on :mod:`mmcell.apis.inference`: the one model builder (``init_cell_model``, also exported here under its
other name ``build_inference_model``), the test pipeline and predictions in original pixels.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config

from .exporters import CellSegmentation, cell_table, label_image, save_labels
from .inference import build_inference_model, init_cell_model, predict_images

__all__ = ['build_inference_model', 'find_images', 'segmentation_of', 'segment', 'LabelSaver']

IMAGE_EXTS = ('.tif', '.tiff', '.png', '.jpg', '.jpeg', '.bmp')
PathLike = Union[str, os.PathLike]


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


def segmentation_of(sample: Any, image_path: str, class_names: Sequence[str] = (),
                    score_thr: Optional[float] = None, image: Optional[np.ndarray] = None) -> CellSegmentation:
    """Label image, class map and cell table of one prediction (``DetDataSample`` in original pixels).

    ``score_thr`` None is :data:`mmcell.evaluation.submission.LABEL_SCORE_THR`.
    """
    from mmcell.evaluation.submission import LABEL_SCORE_THR

    score_thr = LABEL_SCORE_THR if score_thr is None else score_thr
    pred = sample.pred_instances
    keep = pred.scores >= score_thr
    pred = pred[keep] if not bool(keep.all()) else pred
    height, width = (int(v) for v in sample.ori_shape[:2])
    ids, classes, order = label_image(pred.masks, pred.scores.cpu().numpy(), pred.labels.cpu().numpy(), height,
                                      width)
    table = cell_table(ids, order, pred.scores.cpu().numpy(), pred.labels.cpu().numpy(), image, class_names)
    return CellSegmentation(image_path=image_path, labels=ids, classes=classes, table=table)


def segment(images: Union[PathLike, Sequence[PathLike]], config: Union[PathLike, Config], checkpoint: str,
            out_dir: Optional[str] = None, device: str = 'cpu', score_thr: Optional[float] = None,
            tta: bool = False, tile: Optional[int] = None, fast: bool = True, cfg_options: Optional[dict] = None,
            trust_checkpoint: bool = False, progress: bool = True, **model_kwargs) -> List[CellSegmentation]:
    """Segment cells: per image a label image, a class map and a table of cells.

    Args:
        images: image files and/or folders.
        config: mmcell config (file or ``Config``).
        checkpoint: trained weights (``.pth``).
        out_dir: if given, write ``<stem>_labels.tif``, ``<stem>_classes.tif`` and ``<stem>_cells.csv`` there.
        device: ``'cpu'`` or ``'cuda:0'``.
        score_thr: instances scoring below are left out (default
            :data:`mmcell.evaluation.submission.LABEL_SCORE_THR`: people read label images, keep confident cells).
        tta, tile, fast, cfg_options, trust_checkpoint, **model_kwargs: see
            :func:`mmcell.apis.inference.init_cell_model`.
        progress: show a progress bar.

    Returns:
        one :class:`mmcell.apis.exporters.CellSegmentation` per image (``files`` set when ``out_dir`` is given).
    """
    from mmcell.utils.fileio import check_output_path

    paths = find_images(images)
    if out_dir is not None:
        check_output_path(out_dir, is_dir=True)  # before any inference
    model = init_cell_model(config, checkpoint, device=device, cfg_options=cfg_options, fast=fast, tta=tta,
                            tile=tile, trust_checkpoint=trust_checkpoint, **model_kwargs)
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

    def __init__(self, model: torch.nn.Module, out_dir: str, score_thr: Optional[float] = None) -> None:
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
