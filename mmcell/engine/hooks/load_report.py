"""Say in one log line what ``load_from`` loaded and skipped when training starts from another checkpoint."""
from __future__ import annotations

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from mmcell.utils.checkpoint import partial_load_summary, read_checkpoint, state_dict_of


@HOOKS.register_module()
class LoadFromReportHook(Hook):
    """After mmengine's partial ``load_from`` (``strict=False``), log one line: tensors loaded, skipped for another
    shape (e.g. a head trained for another class count, expected when fine-tuning), missing from the file.

    ``tools/train.py`` adds it when a config or flag sets ``load_from`` without resuming. The checkpoint is read
    with mmcell's safe loader (:mod:`mmcell.utils.checkpoint`).
    """

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        load_from = runner.cfg.get('load_from')
        if not load_from or runner.cfg.get('resume'):
            return
        state_dict = state_dict_of(read_checkpoint(load_from), load_from)
        runner.logger.info(f'load_from {partial_load_summary(runner.model, state_dict, load_from)}')
