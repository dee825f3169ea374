"""Post-processing rules applied to predictions before metrics and writers (the one home of the border rule).

HW3 ground truth mostly leaves cells cut by the image border unannotated, so a detection there is usually counted
as a false positive. ``tools/analysis_tools/dataset_stats.py`` reports the GT border fraction of a data set: if it
is low, dropping border detections can raise AP50. :class:`mmcell.engine.hooks.BorderFilterHook` applies the rule
in the val/test loops; :class:`mmcell.evaluation.submission.SubmissionOptions` ``border_margin`` in the writer.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def boxes_touching_border(bboxes: Any, height: int, width: int, margin: float = 1.0) -> np.ndarray:
    """Which x1y1x2y2 boxes (original image pixels) lie within ``margin`` px of the image border.

    Args:
        bboxes: (N, 4) array or tensor.
        height, width: original image size.
        margin: distance in pixels; 0 means only boxes reaching the border itself.

    Returns:
        (N,) bool array.
    """
    if hasattr(bboxes, 'detach'):
        bboxes = bboxes.detach().cpu().numpy()
    b = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    return ((b[:, 0] <= margin) | (b[:, 1] <= margin) | (b[:, 2] >= width - margin)
            | (b[:, 3] >= height - margin))


def filter_border_instances(data_sample: Any, margin: float = 1.0) -> int:
    """Drop border-touching instances from ``data_sample.pred_instances`` in place; return how many were dropped.

    Boxes are compared in original image coordinates (mmdet detectors rescale predictions to ``ori_shape``).
    """
    pred = data_sample.pred_instances
    if len(pred) == 0:
        return 0
    height, width = data_sample.ori_shape[:2]
    touching = boxes_touching_border(pred.bboxes, height, width, margin)
    if not touching.any():
        return 0
    keep = np.flatnonzero(~touching)
    if hasattr(pred.bboxes, 'device'):

        keep = torch.as_tensor(keep, dtype=torch.long, device=pred.bboxes.device)
    data_sample.pred_instances = pred[keep]
    return int(touching.sum())
