"""Predictions of image files: the config's test pipeline, batches, contest ids, and a check that every prediction comes
back at the size of its image file (original pixels)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.utils import ProgressBar

from .builder import build_test_pipeline


def _check_original_size(sample: Any, path: str, expected: Optional[tuple]) -> None:
    height, width = (int(v) for v in sample.ori_shape[:2])
    if expected is not None and (height, width) != tuple(expected):
        raise ValueError(f'{path}: the pipeline loaded it as {height}x{width} but it is '
                         f'{expected[0]}x{expected[1]}')
    masks = sample.pred_instances.get('masks', None)
    if masks is None or not len(masks):
        return
    # dense (N, H, W) masks, or a list of RLE dicts (mmcell's fast inference with mask_format='rle')
    size = tuple(masks[0]['size']) if isinstance(masks, (list, tuple)) else tuple(masks.shape[-2:])
    if size != (height, width):
        raise ValueError(f'{path}: predicted masks are {size}, not the original {height}x{width}; '
                         'the model must rescale its predictions (test_step with rescale=True)')


@torch.no_grad()
def predict_images(model: torch.nn.Module, image_paths: Sequence[str], batch_size: int = 1,
                   img_ids: Optional[Sequence[int]] = None, sizes: Optional[Sequence[tuple]] = None,
                   images: Optional[Sequence[np.ndarray]] = None, progress: bool = True) -> list:
    """Run the model on image files through the config's test pipeline.

    What mmdet's ``inference_detector`` does (the pipeline of ``get_test_pipeline_cfg``, ``test_step`` under
    ``no_grad``), plus batches, contest image ids and a check that predictions come back at the original size.

    Args:
        model: from :func:`init_cell_model`.
        image_paths: image files (TIFF or anything the test pipeline loads).
        batch_size: images per forward pass.
        img_ids: ids stored in the samples (``img_id``); default 0..N-1.
        sizes: expected (H, W) of each image (e.g. from the ids json); a different loaded size is an error.
        images: the images already decoded (RGB uint8, :func:`mmcell.datasets.image_io.read_image`), one per path:
            the pipeline's ``LoadCellImage`` takes them instead of reading the files again.
        progress: show a progress bar.

    Returns:
        one ``DetDataSample`` per image; ``pred_instances`` (bboxes, labels, scores, masks) in original pixels.
    """
    pipeline = build_test_pipeline(model.cfg)
    img_ids = list(range(len(image_paths))) if img_ids is None else list(img_ids)
    bar = ProgressBar(len(image_paths)) if progress and len(image_paths) else None
    samples = []
    for start in range(0, len(image_paths), batch_size):
        paths = [str(p) for p in image_paths[start:start + batch_size]]
        batch = []
        for k, (path, img_id) in enumerate(zip(paths, img_ids[start:start + batch_size])):
            item = dict(img_path=path, img_id=int(img_id))
            if images is not None:
                item['img'] = np.ascontiguousarray(images[start + k][..., ::-1])  # BGR, as mmcv loaders give it
            batch.append(pipeline(item))
        outputs = model.test_step(pseudo_collate(batch))
        for k, (path, out) in enumerate(zip(paths, outputs)):
            out = out.cpu()
            _check_original_size(out, path, None if sizes is None else sizes[start + k])
            samples.append(out)
            if bar is not None:
                bar.update()
    if bar is not None:
        print()
    return samples
