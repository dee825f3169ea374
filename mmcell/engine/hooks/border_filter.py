"""Remove predicted instances whose box touches the image border, before any metric or writer sees them.

HW3 ground truth mostly leaves cells cut by the image border unannotated, so a detection there is usually counted
as a false positive. ``tools/analysis_tools/dataset_stats.py`` reports the GT border fraction of a data set: if it
is low, enabling this hook can raise AP50.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from mmdet.registry import HOOKS
from mmengine.hooks import Hook


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
        import torch

        keep = torch.as_tensor(keep, dtype=torch.long, device=pred.bboxes.device)
    data_sample.pred_instances = pred[keep]
    return int(touching.sum())


@HOOKS.register_module()
class BorderFilterHook(Hook):
    """Drop predicted instances whose box is within ``margin`` px of the image border, for val and/or test.

    mmengine's ValLoop/TestLoop hand the model outputs to the evaluator *before* ``after_val_iter`` /
    ``after_test_iter`` run, so filtering there would be too late. This hook therefore wraps the loop's
    ``evaluator.process`` when the loop starts: every metric (and the submission writer, and hooks that run after
    the iteration, e.g. visualization) sees the filtered predictions.

    Args:
        margin: distance to the border in original image pixels.
        apply_to: loops to filter, any of ``'val'`` and ``'test'``.

    Example::

        custom_hooks = [dict(type='BorderFilterHook', margin=2)]
    """

    priority = 'NORMAL'

    def __init__(self, margin: float = 1.0, apply_to: Sequence[str] = ('val', 'test')) -> None:
        unknown = set(apply_to) - {'val', 'test'}
        if unknown:
            raise ValueError(f'BorderFilterHook: apply_to must be among val/test, got {sorted(unknown)}')
        self.margin = float(margin)
        self.apply_to = tuple(apply_to)
        self.num_removed = 0
        self.num_seen = 0

    def _wrap(self, evaluator: Any) -> None:
        if getattr(evaluator, '_border_filter_hook', None) is self:
            return
        process = evaluator.process
        hook = self

        def process_without_border(data_samples: Sequence[Any], data_batch: Any = None) -> None:
            for sample in data_samples:
                hook.num_seen += len(sample.pred_instances)
                hook.num_removed += filter_border_instances(sample, hook.margin)
            process(data_samples, data_batch)

        evaluator.process = process_without_border
        evaluator._border_filter_hook = self

    def before_val(self, runner) -> None:
        if 'val' in self.apply_to:
            self.num_removed = self.num_seen = 0
            self._wrap(runner.val_loop.evaluator)

    def before_test(self, runner) -> None:
        if 'test' in self.apply_to:
            self.num_removed = self.num_seen = 0
            self._wrap(runner.test_loop.evaluator)

    def _report(self, runner, name: str) -> None:
        runner.logger.info(f'BorderFilterHook ({name}): removed {self.num_removed} of {self.num_seen} predicted '
                           f'instances within {self.margin:g} px of the image border')

    def after_val_epoch(self, runner, metrics=None) -> None:
        if 'val' in self.apply_to:
            self._report(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        if 'test' in self.apply_to:
            self._report(runner, 'test')
