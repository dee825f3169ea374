"""Geometric augmentations keep masks on the pixels they label; HED jitter changes stain amounts only."""
from __future__ import annotations

import numpy as np
import pytest
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from mmcell.datasets.transforms.augment import HEDStainJitter, RandomRot90


def _pattern(h: int = 96, w: int = 128, n: int = 7, seed: int = 0) -> dict:
    """Non-overlapping squares, each painted in its own flat colour: the image itself says where every mask is."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    masks = np.zeros((n, h, w), np.uint8)
    # The 7 corners of the RGB cube other than black: a blend of a colour with the background stays nearest to
    # that colour or to black, never to another instance's colour.
    colours = np.array([[(k >> b) & 1 for b in range(3)] for k in range(1, 8)], np.uint8)[:n] * 255
    taken = np.zeros((h, w), bool)
    i = 0
    while i < n:
        s = int(rng.integers(8, 16))
        y, x = int(rng.integers(2, h - s - 2)), int(rng.integers(2, w - s - 2))
        if taken[y - 2:y + s + 2, x - 2:x + s + 2].any():
            continue
        taken[y:y + s, x:x + s] = True
        masks[i, y:y + s, x:x + s] = 1
        img[y:y + s, x:x + s] = colours[i]
        i += 1
    bitmap = BitmapMasks(masks, h, w)
    return dict(img=img, img_shape=(h, w), gt_masks=bitmap, gt_bboxes=bitmap.get_bboxes('hbox'),
                gt_bboxes_labels=np.arange(n) % 4, gt_ignore_flags=np.zeros(n, bool), colours=colours)


def _mask_from_colour(img: np.ndarray, colour: np.ndarray, tol: int) -> np.ndarray:
    return (np.abs(img.astype(int) - colour.astype(int)).max(axis=2) <= tol)


def _label_by_nearest_colour(img: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Per pixel: index of the nearest instance colour, or -1 where black background is nearest."""
    palette = np.concatenate([np.zeros((1, 3)), colours]).astype(float)
    dist = ((img[:, :, None, :].astype(float) - palette[None, None]) ** 2).sum(-1)
    return dist.argmin(-1) - 1


def _assert_boxes_fit_masks(results: dict) -> None:
    boxes = results['gt_bboxes'].tensor.numpy()
    for box, mask in zip(boxes, results['gt_masks'].masks):
        ys, xs = np.nonzero(mask)
        np.testing.assert_allclose(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_elastic_moves_image_and_masks_together():
    np.random.seed(3)
    results = _pattern()
    original = results['gt_masks'].masks.copy()
    warp = TRANSFORMS.build(dict(type='ElasticTransform', alpha=300.0, sigma=8.0, prob=1.0))
    out = warp(results)
    masks = out['gt_masks'].masks
    assert masks.shape[1:] == out['img'].shape[:2]
    labels = _label_by_nearest_colour(out['img'], out['colours'])
    moved, ious = 0, []
    for i, mask in enumerate(masks.astype(bool)):
        # The warp really deforms the squares ...
        moved += np.logical_and(mask, original[i]).sum() / np.logical_or(mask, original[i]).sum() < 0.9
        # ... and the pixels showing instance i's colour are where its mask went (bilinear resampling blends the
        # edges, so a pixel belongs to the nearest colour; the mask uses nearest-neighbour sampling).
        from_img = labels == i
        ious.append(np.logical_and(from_img, mask).sum() / np.logical_or(from_img, mask).sum())
        stale = np.logical_and(from_img, original[i]).sum() / np.logical_or(from_img, original[i]).sum()
        assert ious[-1] > stale, i  # the warped mask fits the warped image better than the unwarped mask does
    assert min(ious) > 0.9, ious
    assert moved >= len(masks) // 2
    assert len(out['gt_bboxes_labels']) == len(out['gt_ignore_flags']) == len(masks)
    _assert_boxes_fit_masks(out)


def test_elastic_defaults_and_probability():
    warp = TRANSFORMS.build(dict(type='ElasticTransform'))
    assert (warp.alpha, warp.sigma, warp.prob) == (30.0, 12.0, 0.3)
    np.random.seed(0)
    applied = sum(not np.array_equal(warp(_pattern())['img'], _pattern()['img']) for _ in range(40))
    assert 4 <= applied <= 22  # ~30% of 40
    with pytest.raises(ValueError, match='sigma'):
        TRANSFORMS.build(dict(type='ElasticTransform', sigma=0))


def test_elastic_drops_instances_pushed_out():
    np.random.seed(0)
    results = _pattern(n=3)
    keep = results['gt_masks'].masks.copy()
    keep[2] = 0  # an instance with an empty mask after the warp is removed with its label
    results['gt_masks'] = BitmapMasks(keep, *keep.shape[1:])
    out = TRANSFORMS.build(dict(type='ElasticTransform', prob=1.0))(results)
    assert len(out['gt_masks']) == len(out['gt_bboxes']) == len(out['gt_bboxes_labels']) == 2
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [0, 1])


@pytest.mark.parametrize('k', [1, 2, 3])
def test_rot90_exact(k):
    results = _pattern()
    results['homography_matrix'] = np.eye(3, dtype=np.float32)
    before = results['gt_bboxes'].tensor.numpy().copy()
    out = RandomRot90.rotate(results, k)
    assert out['img'].shape[:2] == out['gt_masks'].masks.shape[1:] == tuple(out['img_shape'])
    for i, mask in enumerate(out['gt_masks'].masks):
        np.testing.assert_array_equal(mask.astype(bool), _mask_from_colour(out['img'], out['colours'][i], 0))
    _assert_boxes_fit_masks(out)
    # The recorded homography maps the old box corners onto the new boxes.
    corners = np.concatenate([before[:, :2], np.ones((len(before), 1))], 1) @ out['homography_matrix'].T
    corners2 = np.concatenate([before[:, 2:], np.ones((len(before), 1))], 1) @ out['homography_matrix'].T
    new = out['gt_bboxes'].tensor.numpy()
    np.testing.assert_allclose(np.minimum(corners, corners2)[:, :2], new[:, :2], atol=1e-4)
    assert isinstance(out['gt_bboxes'], HorizontalBoxes)


def test_rot90_four_quarters_is_identity():
    results = _pattern()
    img, masks = results['img'].copy(), results['gt_masks'].masks.copy()
    for _ in range(4):
        results = RandomRot90.rotate(results, 1)
    np.testing.assert_array_equal(results['img'], img)
    np.testing.assert_array_equal(results['gt_masks'].masks, masks)


def test_hed_jitter_scales_haematoxylin():
    # A pure-haematoxylin pixel (optical density along the H vector) and white background.
    od = 0.8 * np.array([0.65, 0.70, 0.29])
    rgb = np.round(255 * np.exp(-od)).astype(np.uint8)
    img = np.full((4, 4, 3), 255, np.uint8)
    img[:2] = rgb[::-1]  # BGR
    same = HEDStainJitter.jitter(img, np.ones(3), np.zeros(3))
    assert np.abs(same.astype(int) - img.astype(int)).max() <= 1
    darker = HEDStainJitter.jitter(img, np.array([1.5, 1.0, 1.0]), np.zeros(3))
    od_after = -np.log(darker[0, 0, ::-1] / 255.0)
    np.testing.assert_allclose(od_after / od, 1.5, rtol=0.03)
    assert (darker[2:] == 255).all()  # background without stain stays white
    np.random.seed(0)
    results = TRANSFORMS.build(dict(type='HEDStainJitter', prob=1.0))(dict(img=img.copy()))
    assert results['img'].dtype == np.uint8 and results['img'].shape == img.shape
    assert not np.array_equal(results['img'], img)
