"""Score a trained model on every image of an HW3-layout data root (e.g. real tissue converted to the layout).

``tools/test.py`` scores the split a config was written for; this scores any labelled data root with the same
model, e.g. how the synthetic ``make demo`` model does on real MoNuSeg tiles. It runs mmengine's Runner test loop
with the config's test pipeline on ``CellInstanceDataset(split='all')`` and :class:`CellCocoMetric`, optionally
class-agnostic (every prediction and ground-truth instance scored as one class ``'nucleus'``).

The config's ``model.test_cfg`` is used as it is: it is part of the model being scored. On dense tiles
(hundreds of nuclei) a cap below 1,000 detections per image lowers the maxDets-1000 figures; a warning says so
and ``cfg_options`` (``model.test_cfg.rcnn.max_per_img=1000``) raises it.
"""
from __future__ import annotations

import copy
import os
import tempfile
from typing import Dict, Optional

from mmdet.datasets.transforms import PackDetInputs
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmcell.apis.builder import ConfigType, build_test_pipeline, init_cell_model
from mmcell.datasets.hw3_format import list_train_samples
from mmcell.evaluation.metrics.cell_coco_metric import DENSE_MAX_DETS

#: the keys :func:`evaluate_data_root` callers print first (CellCocoMetric names, maxDets 1000 and contest 100)
HEADLINE_KEYS = ('segm_mAP_50_md1000', 'segm_mAP_md1000', 'segm_mAP_50', 'bbox_mAP_50_md1000', 'bbox_mAP_md1000')


def with_gt_instances(pipeline: list) -> list:
    """The test pipeline with ``'instances'`` kept by PackDetInputs (CellCocoMetric reads the ground truth there)."""

    pipeline = copy.deepcopy(list(pipeline))
    for step in pipeline:
        if step.get('type') in ('PackDetInputs', 'mmdet.PackDetInputs'):
            keys = tuple(step.get('meta_keys', PackDetInputs.__init__.__defaults__[0]))
            if 'instances' not in keys:
                step['meta_keys'] = keys + ('instances',)
    return pipeline


def _max_per_img(cfg: Config) -> Optional[int]:
    try:
        return int(cfg.model.test_cfg.rcnn.max_per_img)
    except (AttributeError, KeyError, TypeError):
        return None


def evaluate_data_root(config: ConfigType, checkpoint: str, data_root: str, class_agnostic: bool = False,
                       cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                       num_workers: int = 0, trust_checkpoint: bool = False,
                       precision: Optional[str] = None) -> Dict[str, float]:
    """COCO bbox/segm figures of ``checkpoint`` on every ``train/<name>/`` folder of ``data_root``.

    The model comes from :func:`mmcell.apis.init_cell_model` (the one inference builder: a checkpoint that does
    not fit the config is refused there), and mmengine's Runner runs its test loop on it.

    Args:
        config: the model's config (file or Config); its test pipeline and ``model.test_cfg`` are used.
        checkpoint: the ``.pth`` file.
        data_root: an HW3-layout folder with ``train/<name>/image.tif`` + ``class<K>.tif``.
        class_agnostic: score every instance as one class ``'nucleus'`` (finding and outlining nuclei, whatever
            their class; a 4-class model on one-class data such as MoNuSeg).
        cfg_options: overrides merged into the config first (``--cfg-options`` style dict).
        work_dir: where the Runner writes its log (default: a temporary folder, removed afterwards).
        num_workers: data-loading workers.
        trust_checkpoint: load a checkpoint that ``weights_only`` refuses (it can run code).
        precision: ``'fp32'`` / ``'bf16'`` / ``'int8'`` / ``'auto'``; None: the config's (see
            :func:`mmcell.apis.builder.inference_config`).

    Returns:
        the :class:`mmcell.evaluation.CellCocoMetric` figures without the ``coco/`` prefix: ``segm_mAP_50_md1000``
        (AP50, maxDets 1000), ``segm_mAP_md1000``, ``segm_mAP_50`` (contest maxDets 100), the bbox ones, and
        per class (not class-agnostic) ``segm_<class>_AP50`` ...

    Raises:
        FileNotFoundError: config, checkpoint or data root missing.
        ValueError: the checkpoint is refused, unreadable or does not fit the config's model (``CheckpointError``);
            a file of the data root is
            not in the HW3 layout (``HW3FormatError``).
    """



    config_name = str(config.filename if isinstance(config, Config) else config)
    list_train_samples(data_root)  # a missing or empty root is one line here, not a Runner traceback
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f'{checkpoint}: checkpoint file not found')
    # the one builder validates the checkpoint (CheckpointError: one line naming the file)
    model = init_cell_model(config, checkpoint, cfg_options=cfg_options, trust_checkpoint=trust_checkpoint,
                            precision=precision)
    cfg = model.cfg
    cap = _max_per_img(cfg)
    if cap is not None and cap < DENSE_MAX_DETS:
        print_log(f'{config_name}: model.test_cfg.rcnn.max_per_img={cap} < {DENSE_MAX_DETS}: the maxDets-1000 '
                  'figures are capped on dense images (raise it with cfg_options)', logger='current', level=30)

    test_ds = cfg.get('test_dataloader', {}).get('dataset', {})
    dataset = dict(type='CellInstanceDataset', data_root=str(data_root), split='all', test_mode=True,
                   pipeline=with_gt_instances(build_test_pipeline(cfg, compose=False)))
    if class_agnostic:
        dataset.update(class_agnostic=True, metainfo=dict(classes=('nucleus', )))
    elif test_ds.get('metainfo'):
        dataset['metainfo'] = test_ds['metainfo']
    with tempfile.TemporaryDirectory(prefix='mmcell_eval_') as tmp:
        runner = Runner(
            model=model, work_dir=work_dir or tmp, experiment_name=f'eval_{os.path.basename(str(data_root))}',
            test_dataloader=dict(batch_size=1, num_workers=num_workers, persistent_workers=False, drop_last=False,
                                 sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset),
            test_cfg=dict(type='TestLoop'),
            test_evaluator=dict(type='CellCocoMetric', metric=['bbox', 'segm'], class_agnostic=class_agnostic,
                                classwise=not class_agnostic),
            default_hooks=dict(timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=10)),
            env_cfg=cfg.get('env_cfg', dict(dist_cfg=dict(backend='gloo'))), log_level=cfg.get('log_level', 'INFO'),
            default_scope=cfg.get('default_scope', 'mmdet'), cfg=cfg)
        metrics = runner.test() or {}
    return {k[len('coco/'):] if k.startswith('coco/') else k: float(v) for k, v in metrics.items()}
