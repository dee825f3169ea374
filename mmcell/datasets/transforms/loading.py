"""Loading transforms for HW3 TIFF images and RLE instance masks."""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks

from ..hw3_format import read_image_rgb
from ..rle import rles_to_bitmaps


@TRANSFORMS.register_module()
class LoadCellImage(BaseTransform):
    """Read an HW3 TIFF (RGBA/RGB/grey, uint8/uint16; LZW via imagecodecs) as a BGR uint8 image.

    BGR follows mmcv's convention, so mmdet's ``DetDataPreprocessor(bgr_to_rgb=True)`` and ImageNet means apply
    unchanged. Errors name the file (:class:`HW3FormatError`).

    Args:
        to_float32: return float32 instead of uint8.
    """

    def __init__(self, to_float32: bool = False) -> None:
        self.to_float32 = to_float32

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(read_image_rgb(results['img_path'])[..., ::-1])
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(to_float32={self.to_float32})'


class CellBitmapMasks(BitmapMasks):
    """``BitmapMasks`` whose flip moves the whole (N, H, W) stack in one numpy pass.

    mmdet flips each mask with ``mmcv.imflip`` and re-stacks them, which walks ~80 MB twice per flip for 300
    nuclei on a 512 px image; the result here is identical, as a plain contiguous array.
    """

    def flip(self, flip_direction: str = 'horizontal') -> BitmapMasks:
        assert flip_direction in ('horizontal', 'vertical', 'diagonal')
        axes = {'horizontal': (2,), 'vertical': (1,), 'diagonal': (1, 2)}[flip_direction]
        return CellBitmapMasks(np.ascontiguousarray(np.flip(self.masks, axis=axes)), self.height, self.width)


@TRANSFORMS.register_module()
class LoadCellAnnotations(LoadAnnotations):
    """mmdet's ``LoadAnnotations`` with masks decoded from the instances' compact RLE in one vectorised pass.

    mmdet decodes each RLE with pycocotools into its own full-size array; here all foreground runs of an image are
    scattered into one (N, H, W) uint8 array at once, wrapped in :class:`CellBitmapMasks` (faster flips).
    """

    def _load_masks(self, results: dict) -> None:
        height, width = results['ori_shape']
        rles = [inst['mask'] for inst in results.get('instances', [])]
        results['gt_masks'] = CellBitmapMasks(rles_to_bitmaps(rles, height, width), height, width)
