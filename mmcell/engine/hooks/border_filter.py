"""``BorderFilterHook``: apply the border rule (:mod:`mmcell.evaluation.postprocess`) in the val/test loops,
before any metric or writer sees the predictions."""
from __future__ import annotations

from typing import Any, Sequence

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from mmcell.evaluation.postprocess import filter_border_instances


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
