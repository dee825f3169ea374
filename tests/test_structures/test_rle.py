"""The one home of RLE encoding (mmcell.structures.rle): every encoder gives pycocotools' bytes, bit for bit."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util

from mmcell.structures.rle import counts_to_rles, crop_rle, crops_run_lengths, encode_mask, masks_to_rles, rect_rles


def _reference(mask: np.ndarray) -> dict:
    return mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))


def _random_masks(rng, n: int, h: int, w: int) -> np.ndarray:
    masks = rng.random((n, h, w)) < 0.3
    masks[0] = False  # empty
    masks[1] = True  # full: runs through the last pixel
    masks[2, :, -1] = True  # ends at the last pixel
    masks[2, 0, 0] = True  # starts at the first
    return masks


def test_crops_run_lengths_and_crop_rle_match_pycocotools():
    rng = np.random.default_rng(0)
    h, w = 23, 31
    regions, crops = [], np.zeros((6, 12, 9), bool)
    for i in range(6):
        x0, y0 = int(rng.integers(0, w - 9)), int(rng.integers(0, h - 12))
        if i == 5:
            x0, y0 = w - 9, h - 12  # bottom-right corner: runs cross into the next column
        ch, cw = int(rng.integers(1, 13)), int(rng.integers(1, 10))
        crops[i, :ch, :cw] = rng.random((ch, cw)) < 0.6
        crops[i, :, 0] |= i == 5  # a full first column joins the run of the column after
        regions.append([x0, y0, x0 + cw, y0 + ch])
    regions = np.asarray(regions)
    rles = counts_to_rles(crops_run_lengths(crops, regions, h, w), h, w)
    for i, rle in enumerate(rles):
        full = np.zeros((h, w), bool)
        x0, y0 = regions[i, :2]
        full[y0:y0 + 12, x0:x0 + 9] = crops[i][:h - y0, :w - x0]
        assert rle == _reference(full)
        one = crop_rle(crops[i], int(x0), int(y0), h, w)
        assert one['counts'] == rle['counts'] and one['size'] == [h, w]


def test_rect_rles_and_dense_encoders_match_pycocotools():
    h, w = 17, 13
    boxes = [[0, 0, w, h], [2, 3, 7, 9], [0, 0, 0, 5], [4, 0, 9, h], [12, 16, 13, 17]]
    for box, rle in zip(boxes, rect_rles(boxes, h, w)):
        full = np.zeros((h, w), bool)
        full[box[1]:box[3], box[0]:box[2]] = True
        assert rle == _reference(full)
    masks = _random_masks(np.random.default_rng(1), 5, h, w)
    assert masks_to_rles(masks, h, w) == mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for m in masks:
        ref = _reference(m)
        assert encode_mask(m) == dict(size=ref['size'], counts=ref['counts'].decode())
    assert rect_rles([], h, w) == [] and counts_to_rles([], h, w) == []
