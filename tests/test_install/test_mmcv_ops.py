"""mmcv 2.1.0 was built with its C++ ops and they agree with pure-torch references."""
import numpy as np
import pytest
import torch

mmcv_ops = pytest.importorskip('mmcv.ops')


def _reference_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thr: float) -> list:
    order = scores.argsort(descending=True).tolist()
    keep = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = torch.tensor(order, dtype=torch.long)
        if not order:
            break
        lt = torch.maximum(boxes[i, :2], boxes[rest, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=1)
        iou = inter / (areas[i] + areas[rest] - inter)
        order = [j for j, o in zip(order, iou.tolist()) if o <= iou_thr]
    return keep


def test_nms_matches_reference():
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=gen) * 200
    wh = torch.rand(300, 2, generator=gen) * 40 + 5
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(300, generator=gen)
    _, keep = mmcv_ops.nms(boxes, scores, iou_threshold=0.5)
    expected = _reference_nms(boxes, scores, 0.5)
    assert 0 < len(expected) < 300  # the random boxes really overlap, so NMS has something to remove
    assert sorted(keep.tolist()) == sorted(expected)


def _bilinear(feat: np.ndarray, y: float, x: float) -> np.ndarray:
    """mmcv's bilinear_interpolate (roi_align_common), written out in numpy."""
    height, width = feat.shape[1:]
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(feat.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * feat[:, y_low, x_low] + hy * lx * feat[:, y_low, x_high]
            + ly * hx * feat[:, y_high, x_low] + ly * lx * feat[:, y_high, x_high])


def _reference_roi_align(feat: np.ndarray, roi: np.ndarray, out: int, scale: float, ratio: int) -> np.ndarray:
    x1, y1, x2, y2 = roi * scale - 0.5  # aligned=True: pixel centres at half-integers
    bin_h, bin_w = (y2 - y1) / out, (x2 - x1) / out
    result = np.zeros((feat.shape[0], out, out))
    for ph in range(out):
        for pw in range(out):
            samples = [_bilinear(feat, y1 + ph * bin_h + (iy + 0.5) * bin_h / ratio,
                                 x1 + pw * bin_w + (ix + 0.5) * bin_w / ratio)
                       for iy in range(ratio) for ix in range(ratio)]
            result[:, ph, pw] = np.mean(samples, axis=0)
    return result


def test_roi_align_matches_bilinear_reference():
    rng = np.random.default_rng(0)
    feat = rng.standard_normal((1, 3, 24, 32)).astype(np.float32)
    rois = np.array([[2.0, 3.0, 40.0, 30.0], [0.0, 0.0, 63.0, 47.0], [10.5, 7.25, 18.0, 20.0], [50, 30, 70, 60]],
                    dtype=np.float32)  # image coords; the last one leaves the feature map
    layer = mmcv_ops.RoIAlign(output_size=7, spatial_scale=0.5, sampling_ratio=2, aligned=True)
    got = layer(torch.from_numpy(feat), torch.from_numpy(np.c_[np.zeros(len(rois)), rois]).float()).numpy()
    for k, roi in enumerate(rois):
        expected = _reference_roi_align(feat[0], roi, 7, 0.5, 2)
        np.testing.assert_allclose(got[k], expected, rtol=1e-4, atol=1e-5)
