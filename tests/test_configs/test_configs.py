"""Every config in configs/ resolves, builds its model and its data; a few quickstart iterations lower the loss."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmcell.datasets.dataset_config import cell_dataset_cfg, leaf_dataset_cfgs
from mmcell.utils import register_all_modules, set_data_root

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)
QUICKSTART = REPO / 'configs' / 'quickstart' / 'mask-rcnn_r18-tiny_fpn_1xb2-cpu_synthetic.py'

pytest.importorskip('mmcv.ops')
register_all_modules()
from mmdet.registry import DATASETS, METRICS, MODELS  # noqa: E402  (after registration)


def _load(path: Path, data_root: Path) -> Config:
    cfg = set_data_root(Config.fromfile(str(path)), str(data_root))
    # a fixed split names real folders (e.g. MoNuSeg tiles): keep its shape on the synthetic set's folders
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for dataset in leaf_dataset_cfgs(cfg[split].dataset):  # inside a wrapper too (ClassBalancedDataset)
            if dataset.get('val_names'):  # as many as the config names, but half the folders at most (CoNSeP: 32)
                folders = sorted(p.name for p in (data_root / 'train').iterdir())
                dataset.val_names = folders[:min(len(dataset.val_names), len(folders) // 2)]
    return cfg


def _num_classes(cfg: Config) -> int:
    metainfo = cell_dataset_cfg(cfg.train_dataloader.dataset).get('metainfo') or {}
    return len(metainfo.get('classes', ())) or 4


def _class_heads(model: dict) -> list:
    """The heads that carry ``num_classes``: box and mask heads of two-stage models (a list per cascade stage), the
    one head of a one-stage model."""
    if 'roi_head' in model:
        roi = model.roi_head
        heads = roi.bbox_head if isinstance(roi.bbox_head, list) else [roi.bbox_head]
        return heads + [roi.mask_head] + ([roi.point_head] if 'point_head' in roi else [])
    return [model.get('bbox_head') or model.mask_head]


def test_configs_found():
    names = {p.name for p in CONFIGS}
    assert QUICKSTART.name in names
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_builds_model_and_data(path, synthetic_hw3):
    cfg = _load(path, synthetic_hw3)
    assert cfg.default_scope == 'mmdet' and 'mmcell' in cfg.custom_imports.imports
    num_classes = _num_classes(cfg)
    for head in _class_heads(cfg.model):
        assert head.num_classes == num_classes, head.type
    # Pretrained weights come by https through mmengine (no torchvision:// scheme, no torchvision).
    for key in ('load_from', 'model.backbone.init_cfg.checkpoint'):
        url = cfg.get(key) if '.' not in key else (cfg.model.backbone.get('init_cfg') or {}).get('checkpoint')
        assert url is None or url.startswith('https://'), (key, url)
    # The best checkpoint is chosen by the contest AP50, or on dense one-class tiles by AP50 at maxDets 1000.
    assert cfg.default_hooks.checkpoint.get('save_best') == (
        'coco/segm_mAP_50' if num_classes == 4 else 'coco/segm_mAP_50_md1000')

    model = MODELS.build(cfg.model)  # no init_weights: nothing is downloaded
    assert sum(p.numel() for p in model.parameters()) > 1e6

    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    item = train_set[0]  # runs the whole training pipeline on a real synthetic image
    sample = item['data_samples']
    assert item['inputs'].shape[0] == 3 and len(sample.gt_instances) > 0
    assert int(sample.gt_instances.labels.max()) < num_classes
    assert sample.gt_instances.masks.masks.shape[1:] == tuple(item['inputs'].shape[1:])
    for split in ('val_dataloader', 'test_dataloader'):
        dataset = DATASETS.build(cfg[split].dataset)
        assert len(dataset) > 0
        assert 'inputs' in dataset[0]
    for evaluator in ('val_evaluator', 'test_evaluator'):
        metrics = cfg[evaluator] if isinstance(cfg[evaluator], list) else [cfg[evaluator]]
        for metric in metrics:
            METRICS.build(metric)


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_tta_views_start_at_the_test_resize(path):
    """`--tta` uses the config's tta_model and tta_pipeline: its first view is the test pipeline's own resize.

    (A child that changed the test resize once inherited its parent's TTA scales, e.g. MoNuSeg's 1.0x tiles were
    seen at HW3's 800 px short side.)
    """
    cfg = Config.fromfile(str(path))
    assert cfg.tta_model.type == 'CellTTAModel'
    test_pipeline = cfg.test_dataloader.dataset.pipeline
    resize = next(i for i, t in enumerate(test_pipeline) if t['type'] == 'Resize')
    tta = cfg.tta_pipeline
    assert tta[:-1] == test_pipeline[:resize] and tta[-1]['type'] == 'TestTimeAug'
    views, *rest = tta[-1]['transforms']
    assert views[0] == test_pipeline[resize] and len(views) > 1
    assert rest == [[t] for t in test_pipeline[resize + 1:]]


@pytest.mark.slow
def test_quickstart_iterations_lower_the_loss(synthetic_hw3):
    """Eight optimiser steps on one real batch reduce the total loss (the model and recipe can learn)."""
    torch.manual_seed(0)
    np.random.seed(0)
    cfg = _load(QUICKSTART, synthetic_hw3)
    pipeline = [t for t in cfg.train_pipeline if t['type'] not in ('RandomFlip', 'RandomRot90', 'HEDStainJitter')]
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset_cfg.pipeline = pipeline
    dataset = DATASETS.build(dataset_cfg)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    batch = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)

    def total_loss() -> torch.Tensor:
        loss, _ = model.parse_losses(model(**batch, mode='loss'))
        return loss

    losses = []
    for _ in range(8):
        loss = total_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0], losses


CPU_ZOO = sorted((REPO / 'configs' / 'monuseg').glob('*cpu*.py'))


def test_monuseg_zoo_found():
    """The MoNuSeg zoo: the recipe plus at least four other architectures or heads, each with a README row."""
    types = {Config.fromfile(str(p)).model.type for p in CPU_ZOO}
    assert len(CPU_ZOO) >= 5 and {'MaskRCNN', 'PointRend', 'CascadeRCNN', 'RTMDet'} <= types
    readme = (REPO / 'configs' / 'monuseg' / 'README.md').read_text()
    for path in CPU_ZOO:
        assert f'[{path.name}](./{path.name})' in readme, path.name


@pytest.mark.slow
@pytest.mark.parametrize('path', CPU_ZOO, ids=[p.stem for p in CPU_ZOO])
def test_monuseg_zoo_trains_and_predicts_on_cpu(path, synthetic_hw3):
    """From scratch on the CPU: one training step on two real training crops (finite loss, gradients reach the
    backbone's first conv), then one tile predicted with masks in eval mode (mmcv ops, no torchvision)."""
    torch.manual_seed(0)
    np.random.seed(0)
    cfg = _load(path, synthetic_hw3)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    batch = model.data_preprocessor(pseudo_collate([train_set[0], train_set[1]]), True)
    loss, parts = model.parse_losses(model(**batch, mode='loss'))
    assert torch.isfinite(loss) and loss > 0, parts
    loss.backward()
    first = next(p for n, p in model.named_parameters() if n.startswith('backbone.'))
    assert first.grad is not None and float(first.grad.abs().sum()) > 0
    model.eval()
    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    with torch.no_grad():
        out = model.test_step(pseudo_collate([val_set[0]]))[0]
    pred = out.pred_instances
    height, width = out.ori_shape
    assert len(pred) <= 1000 and 'masks' in pred
    if len(pred):
        assert tuple(pred.masks.shape[-2:]) == (height, width)
