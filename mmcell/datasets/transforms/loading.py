"""Loading transforms for HW3 TIFF images and RLE instance masks."""
from __future__ import annotations

from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks

from mmcell.datasets.image_io import read_image
from mmcell.structures.rle import rles_to_bitmaps


@TRANSFORMS.register_module()
class LoadCellImage(BaseTransform):
    """Read an image file (TIFF, PNG, JPEG, BMP; :func:`mmcell.datasets.image_io.read_image`) as a BGR uint8 image.

    An ``img`` already in ``results`` (decoded once by the caller, BGR) is used instead of reading the file again,
    as mmdet's ``LoadImageFromNDArray`` does. BGR follows mmcv's convention, so mmdet's
    ``DetDataPreprocessor(bgr_to_rgb=True)`` and ImageNet means apply unchanged. Errors name the file
    (:class:`~mmcell.utils.errors.HW3FormatError`).

    Args:
        to_float32: return float32 instead of uint8.
    """

    def __init__(self, to_float32: bool = False) -> None:
        self.to_float32 = to_float32

    def transform(self, results: dict) -> dict:
        img = results.get('img')
        if img is None:
            img = np.ascontiguousarray(read_image(results['img_path'])[..., ::-1])
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(to_float32={self.to_float32})'


class CellBitmapMasks(BitmapMasks):
    """``BitmapMasks`` that know each mask's box, so flips and subsets touch only nucleus pixels.

    mmdet flips each full-size mask with ``mmcv.imflip`` and re-stacks them, and ``PackDetInputs`` copies the
    whole (N, H, W) stack to select the non-ignored instances: for 300 nuclei on a 512 px image each step walks
    ~80 MB. Here a flip copies only the box of each mask into a fresh zero (lazily allocated) stack, and a subset
    that keeps every instance in order shares the array (as does construction from an (N, H, W) array, which mmdet
    copies). Results equal mmdet's. ``boxes`` must cover the masks (the HW3 parser's boxes are their exact extents).

    Args:
        masks: (N, H, W) uint8 masks.
        height: image height.
        width: image width.
        boxes: (N, 4) ``[x1, y1, x2, y2]`` (exclusive) covering each mask; None falls back to whole-stack flips.
    """

    def __init__(self, masks: np.ndarray, height: int, width: int, boxes: Optional[np.ndarray] = None) -> None:
        if isinstance(masks, np.ndarray) and masks.ndim == 3 and masks.shape[1:] == (height, width):
            # mmdet's __init__ np.stack()s (copies) even a ready (N, H, W) array
            self.height, self.width, self.masks = height, width, masks
        else:
            super().__init__(masks, height, width)
        self.boxes = None if boxes is None else np.asarray(boxes, dtype=np.int64).reshape(-1, 4)

    def flip(self, flip_direction: str = 'horizontal') -> BitmapMasks:
        assert flip_direction in ('horizontal', 'vertical', 'diagonal')
        h, w = self.height, self.width
        if self.boxes is None:
            axes = {'horizontal': (2,), 'vertical': (1,), 'diagonal': (1, 2)}[flip_direction]
            return CellBitmapMasks(np.ascontiguousarray(np.flip(self.masks, axis=axes)), h, w)
        out = np.zeros_like(self.masks)
        boxes = self.boxes.copy()
        if flip_direction in ('horizontal', 'diagonal'):
            boxes[:, [0, 2]] = w - self.boxes[:, [2, 0]]
        if flip_direction in ('vertical', 'diagonal'):
            boxes[:, [1, 3]] = h - self.boxes[:, [3, 1]]
        step_y = -1 if flip_direction in ('vertical', 'diagonal') else 1
        step_x = -1 if flip_direction in ('horizontal', 'diagonal') else 1
        for n, ((x1, y1, x2, y2), (u1, v1, u2, v2)) in enumerate(zip(self.boxes.tolist(), boxes.tolist())):
            out[n, v1:v2, u1:u2] = self.masks[n, y1:y2, x1:x2][::step_y, ::step_x]
        return CellBitmapMasks(out, h, w, boxes)

    def __getitem__(self, index) -> BitmapMasks:
        keep = np.arange(len(self.masks))[index]
        if keep.ndim == 1 and keep.size == len(self.masks) and (keep == np.arange(keep.size)).all():
            return CellBitmapMasks(self.masks, self.height, self.width, self.boxes)
        boxes = None if self.boxes is None else self.boxes[keep].reshape(-1, 4)
        return CellBitmapMasks(self.masks[keep].reshape(-1, self.height, self.width), self.height, self.width,
                               boxes)


@TRANSFORMS.register_module()
class LoadCellAnnotations(LoadAnnotations):
    """mmdet's ``LoadAnnotations`` with masks decoded from the instances' compact RLE in one vectorised pass.

    mmdet decodes each RLE with pycocotools into its own full-size array; here all foreground runs of an image are
    scattered into one (N, H, W) uint8 array at once, wrapped in :class:`CellBitmapMasks` (faster flips).
    """

    def _load_masks(self, results: dict) -> None:
        height, width = results['ori_shape']
        instances = results.get('instances', [])
        rles = [inst['mask'] for inst in instances]
        # the parser's boxes are the exact pixel extents of the masks (exclusive right/bottom edges)
        boxes = np.array([inst['bbox'] for inst in instances], np.float64).reshape(-1, 4)
        boxes = np.stack([np.floor(boxes[:, 0]), np.floor(boxes[:, 1]), np.ceil(boxes[:, 2]), np.ceil(boxes[:, 3])], 1)
        boxes = np.clip(boxes, 0, [width, height, width, height])
        results['gt_masks'] = CellBitmapMasks(rles_to_bitmaps(rles, height, width), height, width, boxes)
