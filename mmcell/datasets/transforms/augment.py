"""Training augmentations for H&E nuclei that mmdet lacks: elastic warp, 90-degree rotations, HED stain jitter.

Flips come from mmdet's ``RandomFlip(prob=[0.25, 0.25], direction=['horizontal', 'vertical'])`` and brightness /
contrast jitter from ``PhotoMetricDistortion``. Every geometric transform here moves the image, the instance masks
and (if present) ``gt_seg_map`` with one coordinate map, then recomputes the boxes, so masks stay aligned with
the pixels they label. Randomness uses ``np.random`` like mmcv's transforms (seeded by mmengine's ``randomness``).
"""
from __future__ import annotations

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from scipy.ndimage import gaussian_filter

from mmcell.datasets.stain import hed_to_rgb, rgb_to_hed


def _bitmap(masks) -> BitmapMasks:
    """BitmapMasks from BitmapMasks or PolygonMasks (the warps below need pixels)."""
    if isinstance(masks, BitmapMasks):
        return masks
    return BitmapMasks(masks.to_ndarray(), masks.height, masks.width)


def _keep_nonempty(results: dict, masks: BitmapMasks) -> None:
    """Store warped masks, recompute their boxes and drop instances pushed out of the image."""
    keep = masks.masks.reshape(len(masks), -1).any(axis=1) if len(masks) else np.zeros(0, bool)
    if not keep.all():
        masks = masks[np.nonzero(keep)[0]]
        for key in ('gt_bboxes_labels', 'gt_ignore_flags'):
            if results.get(key) is not None:
                results[key] = results[key][keep]
    results['gt_masks'] = masks
    if results.get('gt_bboxes') is not None:
        boxes = masks.get_bboxes('hbox')
        if not isinstance(results['gt_bboxes'], HorizontalBoxes):
            boxes = boxes.numpy()
        results['gt_bboxes'] = boxes


@TRANSFORMS.register_module()
class ElasticTransform(BaseTransform):
    """Elastic deformation (Simard et al. 2003) of the image and its instance masks, boxes recomputed.

    A random displacement field, uniform in [-1, 1] per pixel, is smoothed with a Gaussian of ``sigma`` pixels
    and scaled by ``alpha``. The image is resampled bilinearly and masks / ``gt_seg_map`` with nearest neighbour
    from the same field, so every mask stays on the pixels it labels. Instances warped out of the image are
    dropped.

    Required keys: img. Modified keys: img, gt_masks, gt_bboxes, gt_bboxes_labels, gt_ignore_flags, gt_seg_map.

    Args:
        alpha (float): displacement scale in pixels. Defaults to 30.
        sigma (float): smoothing of the field in pixels (larger = smoother, more local-affine). Defaults to 12.
        prob (float): probability of applying the warp. Defaults to 0.3.
    """

    def __init__(self, alpha: float = 30.0, sigma: float = 12.0, prob: float = 0.3) -> None:
        if alpha < 0 or sigma <= 0 or not 0 <= prob <= 1:
            raise ValueError(f'ElasticTransform: need alpha >= 0, sigma > 0, 0 <= prob <= 1; got '
                             f'alpha={alpha}, sigma={sigma}, prob={prob}')
        self.alpha, self.sigma, self.prob = alpha, sigma, prob

    def sample_field(self, height: int, width: int) -> tuple:
        """Source coordinates ``(map_x, map_y)`` (float32, HxW) of every output pixel."""
        dx = gaussian_filter(np.random.uniform(-1, 1, (height, width)), self.sigma, mode='constant') * self.alpha
        dy = gaussian_filter(np.random.uniform(-1, 1, (height, width)), self.sigma, mode='constant') * self.alpha
        yy, xx = np.mgrid[:height, :width]
        return (xx + dx).astype(np.float32), (yy + dy).astype(np.float32)

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        img = results['img']
        h, w = img.shape[:2]
        map_x, map_y = self.sample_field(h, w)
        results['img'] = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        # Nearest source pixel for labels, reflected at the border exactly as BORDER_REFLECT_101 does.
        src_x = _reflect101(np.rint(map_x).astype(np.int64), w)
        src_y = _reflect101(np.rint(map_y).astype(np.int64), h)
        if results.get('gt_seg_map') is not None:
            results['gt_seg_map'] = results['gt_seg_map'][src_y, src_x]
        if results.get('gt_masks') is not None:
            masks = _bitmap(results['gt_masks']).masks
            warped = np.empty_like(masks)
            for start in range(0, len(masks), 64):  # chunks bound the temporary memory on crowded images
                warped[start:start + 64] = masks[start:start + 64][:, src_y, src_x]
            _keep_nonempty(results, BitmapMasks(warped, h, w))
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(alpha={self.alpha}, sigma={self.sigma}, prob={self.prob})'


def _reflect101(idx: np.ndarray, size: int) -> np.ndarray:
    """Indices reflected into [0, size) like cv2.BORDER_REFLECT_101 (dcb|abcd|cba)."""
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= size, period - idx, idx)


@TRANSFORMS.register_module()
class RandomRot90(BaseTransform):
    """Rotate the image, masks, boxes and seg map by a random multiple of 90 degrees (counter-clockwise).

    Nuclei have no canonical orientation; with h/v flips this gives all 8 dihedral symmetries.

    Required keys: img. Modified keys: img, img_shape, gt_bboxes, gt_masks, gt_seg_map, homography_matrix.

    Args:
        prob (float): probability of rotating (by 90, 180 or 270 degrees, equally likely). Defaults to 0.5.
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'RandomRot90: prob must be in [0, 1], got {prob}')
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        return self.rotate(results, int(np.random.randint(1, 4)))

    @staticmethod
    def rotate(results: dict, k: int) -> dict:
        """Rotate by ``k`` * 90 degrees counter-clockwise (as ``np.rot90``)."""
        k %= 4
        if k == 0:
            return results
        h, w = results['img'].shape[:2]
        results['img'] = np.ascontiguousarray(np.rot90(results['img'], k))
        results['img_shape'] = results['img'].shape[:2]
        if results.get('gt_seg_map') is not None:
            results['gt_seg_map'] = np.ascontiguousarray(np.rot90(results['gt_seg_map'], k))
        # One counter-clockwise quarter turn maps (x, y) in a WxH image to (y, W - x) in the HxW result.
        matrix = np.eye(3, dtype=np.float32)
        size_w = w
        for _ in range(k):
            quarter = np.array([[0, 1, 0], [-1, 0, size_w], [0, 0, 1]], dtype=np.float32)
            matrix = quarter @ matrix
            size_w = h if size_w == w else w
        if results.get('gt_bboxes') is not None:
            boxes = results['gt_bboxes']
            tensor = boxes.tensor.numpy() if isinstance(boxes, HorizontalBoxes) else np.asarray(boxes)
            corners = np.stack([tensor[:, [0, 1]], tensor[:, [2, 3]]], axis=1)  # N x 2 x 2 (x, y)
            moved = corners @ matrix[:2, :2].T + matrix[:2, 2]
            new = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1).astype(tensor.dtype)
            results['gt_bboxes'] = HorizontalBoxes(new) if isinstance(boxes, HorizontalBoxes) else new
        if results.get('gt_masks') is not None:
            masks = _bitmap(results['gt_masks'])
            rotated = np.ascontiguousarray(np.rot90(masks.masks, k, axes=(1, 2)))
            results['gt_masks'] = BitmapMasks(rotated, *rotated.shape[1:])
        if results.get('homography_matrix') is not None:
            results['homography_matrix'] = matrix @ results['homography_matrix']
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'


@TRANSFORMS.register_module()
class HEDStainJitter(BaseTransform):
    """Perturb haematoxylin / eosin / DAB concentrations (Tellez et al. 2018) of a BGR uint8 image.

    The image is unmixed into HED optical densities (Ruifrok & Johnston vectors), each stain channel is scaled by
    U(1 - theta, 1 + theta) and shifted by U(-bias, bias), and the result is mixed back. This mimics stain and
    scanner variation between slides better than RGB jitter.

    Required keys: img (BGR uint8). Modified keys: img.

    Args:
        theta (float): scale range of each stain. Defaults to 0.05.
        bias (float): shift range of each stain (optical density units). Defaults to 0.05.
        prob (float): probability of applying the jitter. Defaults to 0.5.
    """

    def __init__(self, theta: float = 0.05, bias: float = 0.05, prob: float = 0.5) -> None:
        if theta < 0 or bias < 0 or not 0 <= prob <= 1:
            raise ValueError(f'HEDStainJitter: need theta, bias >= 0 and 0 <= prob <= 1; got '
                             f'theta={theta}, bias={bias}, prob={prob}')
        self.theta, self.bias, self.prob = theta, bias, prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.prob:
            scale = np.random.uniform(1 - self.theta, 1 + self.theta, 3)
            shift = np.random.uniform(-self.bias, self.bias, 3)
            results['img'] = self.jitter(results['img'], scale, shift)
        return results

    @staticmethod
    def jitter(img: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Return the BGR uint8 ``img`` with HED densities ``hed * scale + shift`` (per stain, length 3)."""
        hed = rgb_to_hed(img[..., 2::-1])
        hed = hed * np.asarray(scale, np.float32) + np.asarray(shift, np.float32)
        out = np.clip(hed_to_rgb(hed) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(out[..., ::-1])

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(theta={self.theta}, bias={self.bias}, prob={self.prob})'
