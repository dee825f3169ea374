"""``mmcell.apis.segment``: images in, label images + cell tables out (the API behind ``mmcell segment``).

Takes TIFF, PNG, JPEG and BMP files (RGB, RGBA, grey, uint16, channels-first: the one rule of
:mod:`mmcell.datasets.image_io`), each decoded once: the same pixels feed the model and the cell table's intensity
columns.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmengine.config import Config

from mmcell.datasets.image_io import IMAGE_SUFFIXES, read_image
from mmcell.exporters.cells import geojson_metadata
from mmcell.exporters.image import CellSegmentation, save_labels, segmentation_of
from mmcell.utils.fileio import check_output_path
from mmcell.utils.setup_env import check_device

from .builder import init_cell_model
from .predict import predict_images

__all__ = ['find_images', 'segment']

PathLike = Union[str, os.PathLike]


def find_images(inputs: Union[PathLike, Sequence[PathLike]]) -> List[str]:
    """Image files from files and folders (a folder contributes its images, sorted)."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    paths: List[str] = []
    for item in items:
        item = str(item)
        if osp.isdir(item):
            paths += sorted(p for p in glob.glob(osp.join(glob.escape(item), '*'))
                            if p.lower().endswith(IMAGE_SUFFIXES))
        elif osp.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f'{item}: no such image or folder')
    if not paths:
        raise FileNotFoundError(f'{", ".join(map(str, items))}: no images found')
    return paths


def segment(images: Union[PathLike, Sequence[PathLike]], config: Union[PathLike, Config], checkpoint: str,
            out_dir: Optional[str] = None, device: str = 'cpu', score_thr: Optional[float] = None,
            tta: bool = False, tile: Optional[int] = None, fast: bool = True, cfg_options: Optional[dict] = None,
            trust_checkpoint: bool = False, progress: bool = True, mpp: Optional[float] = None,
            **model_kwargs) -> List[CellSegmentation]:
    """Segment cells: per image a label image, a class map and a table of cells.

    Args:
        images: image files and/or folders.
        config: mmcell config (file or ``Config``).
        checkpoint: trained weights (``.pth``).
        out_dir: if given, write ``<stem>_labels.tif``, ``<stem>_classes.tif``, ``<stem>_cells.csv`` and
            ``<stem>_cells.geojson`` there.
        device: ``'cpu'`` or ``'cuda:0'``.
        score_thr: instances scoring below are left out (default
            :data:`mmcell.evaluation.submission.LABEL_SCORE_THR`: people read label images, keep confident cells).
        tta, tile, fast, cfg_options, trust_checkpoint, **model_kwargs: see
            :func:`mmcell.apis.builder.init_cell_model`.
        progress: print one line per image.
        mpp: microns per pixel of the images: the µm measurements of the tables and GeoJSON (pixel ones without).

    Returns:
        one :class:`mmcell.exporters.image.CellSegmentation` per image (``files`` set when ``out_dir`` is given).
    """
    check_device(device)
    if mpp is not None and not (mpp > 0):
        raise ValueError(f'--mpp {mpp}: must be a positive number')
    paths = find_images(images)
    if out_dir is not None:
        check_output_path(out_dir, is_dir=True)  # before any inference
    model = init_cell_model(config, checkpoint, device=device, cfg_options=cfg_options, fast=fast, tta=tta,
                            tile=tile, trust_checkpoint=trust_checkpoint, **model_kwargs)
    names = tuple((model.dataset_meta or {}).get('classes', ()))
    metadata = geojson_metadata(config=getattr(config, 'filename', None) or config, checkpoint=checkpoint, mpp=mpp,
                                classes=list(names))
    results = []
    for path in paths:  # one at a time: only one image's predictions are held in memory
        rgb = read_image(path)
        sample = predict_images(model, [path], images=[rgb], progress=False)[0]
        seg = segmentation_of(sample, path, names, score_thr, rgb, mpp=mpp)
        if out_dir is not None:
            save_labels(seg, out_dir, model.dataset_meta, metadata)
        if progress:
            print(f'{path}: {len(seg.table)} cells' + (f' -> {seg.files["labels"]}' if seg.files else ''))
        results.append(seg)
    return results
