"""Launcher preparation and data-root rewriting used by tools/train.py and tools/test.py."""
import pytest
import torch
from mmengine.config import Config

from mmcell.utils import prepare_launch, set_data_root


def _config(tmp_path) -> Config:
    path = tmp_path / 'cfg.py'
    path.write_text(
        "data_root = 'data/hw3/'\n"
        "train_dataloader = dict(dataset=dict(type='X', data_root=data_root, ann_file='train.json'))\n"
        "test_evaluator = [dict(type='M', ann_file=data_root + 'test_gt_coco.json'), dict(type='N', out='r.zip')]\n"
        "optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))\n")
    return Config.fromfile(str(path))


def test_set_data_root_rewrites_every_derived_path(tmp_path):
    cfg = set_data_root(_config(tmp_path), '/elsewhere/release')
    assert cfg.data_root == '/elsewhere/release/'
    assert cfg.train_dataloader.dataset.data_root == '/elsewhere/release/'
    assert cfg.train_dataloader.dataset.ann_file == 'train.json'  # relative to data_root: untouched
    assert cfg.test_evaluator[0].ann_file == '/elsewhere/release/test_gt_coco.json'
    assert cfg.test_evaluator[1].out == 'r.zip'


def test_set_data_root_needs_the_variable(tmp_path):
    path = tmp_path / 'plain.py'
    path.write_text("train_dataloader = dict(dataset=dict(data_root='x/'))\n")
    with pytest.raises(SystemExit, match='data_root'):
        set_data_root(Config.fromfile(str(path)), '/y')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only behaviour')
def test_amp_on_cpu_means_bf16(tmp_path):
    cfg = prepare_launch(_config(tmp_path), 'none', amp=True)  # tests/test_utils/test_precision.py: the rest
    assert cfg.optim_wrapper.type == 'BF16AutocastOptimWrapper'


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only behaviour')
def test_cpu_distributed_uses_gloo_and_cpu_ddp(tmp_path):
    cfg = prepare_launch(_config(tmp_path), 'slurm')  # slurm: config only, no process group is created here
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None)
