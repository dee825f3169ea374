"""Predictions (mmdet ``DetDataSample`` or arrays) encoded as submission entries: contest ``category_id``, COCO xywh
box, RLE mask at the original image size."""
from __future__ import annotations

import os.path as osp
from typing import Any, Iterable, Mapping

import numpy as np
import pycocotools.mask as mask_utils

from mmcell.datasets.metainfo import CONTEST_MAX_DETS, NUM_CLASSES, SUBMISSION_JSON  # noqa: F401
from mmcell.evaluation.postprocess import boxes_touching_border
from mmcell.evaluation.submission.options import Results, SubmissionError, SubmissionOptions
from mmcell.structures.rle import encode_mask, masks_to_rles, rle_bytes, rle_text


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, 'detach'):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def encode_instances(image_id: int, height: int, width: int, labels: Any, scores: Any, masks: Any,
                     bboxes: Any = None, options: SubmissionOptions | None = None,
                     num_classes: int = NUM_CLASSES, source: str = '') -> Results:
    """Turn one image's predicted instances into submission entries, best score first.

    Args:
        image_id: contest id of the image.
        height, width: original image size; every mask must have it.
        labels: (N,) model labels 0..num_classes-1 (category_id = label + 1).
        scores: (N,) scores; clipped to [0, 1].
        masks: (N, H, W) bool/uint8/float array or tensor, or a list of N RLE dicts of size [H, W].
        bboxes: (N, 4) x1y1x2y2 boxes in original pixels; None derives them from the masks.
        options: thresholds and caps (:class:`SubmissionOptions`).
        num_classes: number of model classes.
        source: name for error messages (image path).

    Returns:
        list of submission dicts.
    """
    opts = options or SubmissionOptions()
    where = source or f'image_id {image_id}'
    labels = _to_numpy(labels).astype(np.int64).reshape(-1)
    scores = _to_numpy(scores).astype(np.float64).reshape(-1)
    n = len(labels)
    rles = None
    if isinstance(masks, (list, tuple)):
        rles = list(masks)
        if len(rles) != n:
            raise SubmissionError(f'{where}: {len(rles)} masks for {n} instances')
    else:
        masks = _to_numpy(masks)
        if masks.shape[0] != n or masks.ndim != 3:
            raise SubmissionError(f'{where}: masks of shape {masks.shape} for {n} instances')
        if n and masks.shape[1:] != (height, width):
            raise SubmissionError(f'{where}: masks are {masks.shape[1]}x{masks.shape[2]} but the image is '
                                  f'{height}x{width}; predictions must be mapped back to the original size')
    if len(scores) != n:
        raise SubmissionError(f'{where}: {len(scores)} scores for {n} instances')
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise SubmissionError(f'{where}: label {int(labels.max())} outside 0..{num_classes - 1}')
    if np.isnan(scores).any():
        raise SubmissionError(f'{where}: NaN score')
    if bboxes is not None:
        bboxes = _to_numpy(bboxes).astype(np.float64).reshape(-1, 4)

    keep = np.flatnonzero(scores >= opts.score_thr)
    if opts.border_margin is not None and len(keep):

        boxes = bboxes if bboxes is not None else _mask_boxes(masks if rles is None else rles, height, width)
        touching = boxes_touching_border(boxes, height, width, opts.border_margin)
        keep = keep[~touching[keep]]
    keep = keep[np.argsort(-scores[keep], kind='stable')]
    if opts.max_per_img is not None:
        keep = keep[:opts.max_per_img]

    results = []
    for i in keep:
        if rles is None:
            mask = masks[i]
            mask = mask >= opts.mask_thr if mask.dtype.kind == 'f' else mask.astype(bool)
            rle = encode_mask(mask)
        else:
            if list(rles[i]['size']) != [height, width]:
                raise SubmissionError(f'{where}: RLE of size {list(rles[i]["size"])}, image is {[height, width]}')
            rle = rle_text(rles[i])
        area = float(mask_utils.area(rle_bytes(rle)))
        if area == 0 and not opts.keep_empty:
            continue
        if bboxes is not None:
            x1, y1, x2, y2 = bboxes[i]
            x1, x2 = np.clip([x1, x2], 0, width)
            y1, y2 = np.clip([y1, y2], 0, height)
            bbox = [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]
        else:
            bbox = [float(v) for v in mask_utils.toBbox(rle_bytes(rle))]
        results.append(dict(image_id=int(image_id), bbox=bbox, score=float(np.clip(scores[i], 0.0, 1.0)),
                            category_id=int(labels[i]) + 1, segmentation=rle))
    return results


def _mask_boxes(masks: Any, height: int, width: int) -> np.ndarray:
    """x1y1x2y2 boxes of binary masks (array or RLE list)."""
    rles = [rle_bytes(r) for r in masks] if isinstance(masks, (list, tuple)) else masks_to_rles(masks, height, width)
    xywh = mask_utils.toBbox(rles).reshape(-1, 4) if rles else np.zeros((0, 4))
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def encode_data_sample(sample: Any, image_id: int | None = None, options: SubmissionOptions | None = None,
                       num_classes: int = NUM_CLASSES, expected_size: tuple[int, int] | None = None) -> Results:
    """Submission entries of one mmdet ``DetDataSample`` (or its ``to_dict()``) with ``pred_instances``.

    Args:
        sample: prediction in original image pixels (``ori_shape`` is the original size).
        image_id: contest id; default the sample's ``img_id``.
        options: see :class:`SubmissionOptions`.
        num_classes: number of model classes.
        expected_size: (H, W) the ids json gives for this image; the sample must agree.
    """
    get = sample.get if isinstance(sample, Mapping) else (lambda k, d=None: getattr(sample, k, d))
    source = str(get('img_path', '') or '')
    height, width = (int(v) for v in get('ori_shape')[:2])
    if expected_size is not None and (height, width) != tuple(expected_size):
        raise SubmissionError(f'{source}: image is {height}x{width} but the ids json says '
                              f'{expected_size[0]}x{expected_size[1]}')
    pred = get('pred_instances')
    pget = pred.get if isinstance(pred, Mapping) else (lambda k, d=None: getattr(pred, k, d))
    masks = pget('masks')
    if masks is None:
        raise SubmissionError(f'{source}: prediction has no masks (a mask model is needed for the contest)')
    return encode_instances(get('img_id') if image_id is None else image_id, height, width, pget('labels'),
                            pget('scores'), masks, pget('bboxes'), options, num_classes, source)


def images_from_samples(samples: Iterable[Mapping]) -> list[dict]:
    """Image list (``id``, ``file_name``, ``height``, ``width``) of data samples, for validation."""
    images = {}
    for s in samples:
        h, w = s['ori_shape'][:2]
        images[int(s['img_id'])] = dict(id=int(s['img_id']), file_name=osp.basename(str(s.get('img_path', ''))),
                                        height=int(h), width=int(w))
    return list(images.values())
