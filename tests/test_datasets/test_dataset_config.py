"""The data set inside dataset wrappers (``mmcell.datasets.dataset_config``) and the CoNSeP repeat-factor-sampling
recipe that needs it: a ``ClassBalancedDataset`` training set still gets its fold's ``val_names`` and data root,
repeats the patches holding the rarer classes, and joins extra training data. No training."""
from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

import pytest
from mmengine.config import Config

from mmcell.apis.crossval import fold_train_config
from mmcell.datasets.dataset_config import cell_dataset_cfg, leaf_dataset_cfgs
from mmcell.datasets.extra_train import train_config_with_extra
from mmcell.utils.errors import InputError
from mmcell.utils.setup_env import load_config
from tests.conftest import REPO, sample_names, train_sample_names

RECIPE = REPO / 'configs' / 'consep' / 'mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2400i_consep.py'
RFS = REPO / 'configs' / 'consep' / 'mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2400i-rfs_consep.py'
#: the class each patch of the ``rare_root`` set holds (class<K>.tif, K = label + 1): "other" (0) in one patch of
#: six, epithelial (2) in one, spindle (3) in four
PATCH_CLASS = {'train_30_000': 0, 'train_31_000': 2, 'train_32_000': 3, 'train_33_000': 3, 'train_34_000': 3,
               'train_35_000': 3}
HELD_OUT = ['train_35_000']  # a fold's held-out patch (a spindle one)


def test_leaves_and_the_one_cell_dataset_inside_wrappers():
    plain = dict(type='CellInstanceDataset', data_root='r/')
    assert leaf_dataset_cfgs(plain) == [plain] and cell_dataset_cfg(plain) is plain
    scoped = dict(type='mmcell.CellInstanceDataset', data_root='r/')
    nested = dict(type='RepeatDataset', times=2, dataset=dict(type='ClassBalancedDataset', oversample_thr=0.5,
                                                              dataset=scoped))
    assert cell_dataset_cfg(nested) is scoped  # the dict itself: a change to it changes the config
    other = dict(type='CocoDataset', data_root='c/')
    concat = dict(type='ConcatDataset', datasets=[nested, dict(type='RepeatDataset', times=3, dataset=other)])
    assert leaf_dataset_cfgs(concat) == [scoped, other] and cell_dataset_cfg(concat) is scoped
    two = dict(type='ConcatDataset', datasets=[plain, nested])
    for bad, needle in ((two, 'holds 2 CellInstanceDataset configs (a ConcatDataset of CellInstanceDataset, '
                              'CellInstanceDataset)'),
                        (dict(type='RepeatDataset', times=2, dataset=other),
                         'holds 0 CellInstanceDataset configs (a RepeatDataset of CocoDataset)')):
        with pytest.raises(InputError) as err:
            cell_dataset_cfg(bad, 'cfg.py: the training set')
        assert str(err.value).startswith('cfg.py: the training set ') and needle in str(err.value)
        assert len(str(err.value).splitlines()) == 1


def test_rfs_recipe_wraps_the_recipes_training_set_and_changes_nothing_else():
    recipe, rfs = Config.fromfile(str(RECIPE)), Config.fromfile(str(RFS))
    wrapper = rfs.train_dataloader.dataset
    assert wrapper.type == 'ClassBalancedDataset' and wrapper.oversample_thr == 0.53
    assert wrapper.dataset == recipe.train_dataloader.dataset  # the recipe's own set, val_names and pipeline
    assert cell_dataset_cfg(wrapper) == recipe.train_dataloader.dataset
    # the same iteration loop and sampler: the repeats change what is drawn, not how many batches
    assert rfs.train_cfg == recipe.train_cfg and rfs.train_cfg.type == 'IterBasedTrainLoop'
    assert rfs.train_dataloader.sampler == recipe.train_dataloader.sampler
    assert {k for k in set(rfs) | set(recipe) if rfs.get(k) != recipe.get(k)} == {'train_dataloader',
                                                                                 'oversample_thr'}


@pytest.fixture(scope='module')
def rare_root(synthetic_hw3, tmp_path_factory) -> Path:
    """The synthetic generator's 6 training images as CoNSeP-named patches, each holding one class
    (:data:`PATCH_CLASS`; its instances are the generator's class-2 ones), so the class frequencies are known."""
    root = tmp_path_factory.mktemp('rare') / 'data'
    for src, (name, label) in zip(sample_names(synthetic_hw3), PATCH_CLASS.items()):
        folder = root / 'train' / name
        folder.mkdir(parents=True)
        shutil.copy(synthetic_hw3 / 'train' / src / 'image.tif', folder / 'image.tif')  # copies: the dataset
        shutil.copy(synthetic_hw3 / 'train' / src / 'class2.tif', folder / f'class{label + 1}.tif')  # resolves links
    return root


def _fold_config(data_root: Path, tmp_path: Path) -> Config:
    """The RFS recipe as a CV fold trains it (``run_fold``: ``--data-root``, then :func:`fold_train_config`)."""
    return fold_train_config(load_config(str(RFS), data_root=str(data_root)), HELD_OUT, tmp_path, iters=600)


def test_a_wrapped_fold_gets_its_val_names_and_data_root(rare_root, tmp_path):
    cfg = _fold_config(rare_root, tmp_path)
    assert cfg.train_dataloader.dataset.type == 'ClassBalancedDataset' and cfg.train_cfg.max_iters == 600
    own = cell_dataset_cfg(cfg.train_dataloader.dataset)
    assert own.val_names == HELD_OUT and own.split == 'train'
    assert own.data_root == f'{rare_root}/' and cfg.test_dataloader.dataset.data_root == f'{rare_root}/'
    # the built training set never yields the held-out patch
    names = train_sample_names(cfg)
    assert set(names) == set(PATCH_CLASS) - set(HELD_OUT)


def test_rfs_repeats_the_patches_holding_the_rarer_classes(rare_root, tmp_path):
    """On the 5 training patches "other" and epithelial lie in 1 each (f = 0.2 < 0.53), spindle in 3 (0.6): the
    patch of each rarer class is drawn ceil(sqrt(0.53 / 0.2)) = 2 times per pass, a spindle patch once."""
    cfg = _fold_config(rare_root, tmp_path)
    counts = Counter(train_sample_names(cfg))
    trained = [n for n in PATCH_CLASS if n not in HELD_OUT]
    freq = Counter(PATCH_CLASS[n] for n in trained)
    expected = {n: math.ceil(max(1.0, math.sqrt(0.53 / (freq[PATCH_CLASS[n]] / len(trained))))) for n in trained}
    assert expected == {'train_30_000': 2, 'train_31_000': 2, 'train_32_000': 1, 'train_33_000': 1,
                        'train_34_000': 1}
    assert dict(counts) == expected and sum(counts.values()) == 7
    rare = [n for n in trained if PATCH_CLASS[n] == 0]
    assert sum(counts[n] for n in rare) == 2 * len(rare)  # the "other" patches, counted: each drawn twice


def test_extra_training_data_joins_the_wrapped_set(rare_root, synthetic_hw3, tmp_path):
    """``--extra-train`` keeps the wrapper on the own data (its repeat factors) and adds a plain copy of the data
    set inside it for the extra root."""
    split = {'train_dataloader.dataset.dataset.val_names': HELD_OUT}  # the recipe's names CoNSeP's patches
    cfg = train_config_with_extra(load_config(str(RFS), split, str(rare_root)), [synthetic_hw3])
    own, extra = cfg.train_dataloader.dataset.datasets
    assert own.type == 'ClassBalancedDataset' and own.dataset.data_root == f'{rare_root}/'
    extra = extra.get('dataset', extra)  # a RepeatDataset when the extra images are larger
    assert extra.type == 'CellInstanceDataset' and Path(extra.data_root) == synthetic_hw3 and extra.split == 'all'
    assert extra.pipeline == own.dataset.pipeline and extra.metainfo == own.dataset.metainfo
    assert own.dataset.val_names == HELD_OUT and extra.val_names is None
