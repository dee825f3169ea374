"""More training data for a normal training run: ``tools/train.py --extra-train ROOT`` builds its training set with
the cross-validation protocol's own code (:mod:`mmcell.datasets.extra_train`).

The config is built and its training set constructed for real (the samples it yields, repeats included) on the
synthetic generator's data; no model is trained: the Runner of ``tools/train.py`` is stubbed.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from mmcell.datasets.extra_train import train_config_with_extra
from mmcell.datasets.hw3_annotations import split_samples
from mmcell.utils.setup_env import load_config
from tests.conftest import REPO, load_script, sample_names, train_sample_names

MONUSEG = REPO / 'configs' / 'monuseg' / 'mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2200i_monuseg.py'
QUICKSTART = REPO / 'configs' / 'quickstart' / 'mask-rcnn_r18-tiny_fpn_1xb2-cpu_synthetic.py'


@pytest.fixture(scope='module')
def tiles(tmp_path_factory) -> Path:
    """5 synthetic 'tiles' of 256 px: the training data root (names disjoint from ``synthetic_hw3``'s)."""
    from mmcell.synthetic.hw3 import make_synthetic_hw3

    return make_synthetic_hw3(tmp_path_factory.mktemp('extra') / 'tiles', num_train=5, num_test=0, seed=11,
                              min_size=256, max_size=256)


def test_fixed_val_names_are_never_trained_on(tiles, synthetic_hw3):
    """The MoNuSeg recipe's shape (a fixed ``val_names`` split): a ConcatDataset of the recipe's own training set,
    unchanged, and the extra root read whole, repeated by pixel area; validation and test sets untouched."""
    own, extra = sample_names(tiles), sample_names(synthetic_hw3)
    cfg = load_config(str(MONUSEG), None, str(tiles))
    val = own[:2]
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[split].dataset.val_names = val
    before = Config(cfg.to_dict())
    built = train_config_with_extra(cfg, [synthetic_hw3])
    assert cfg.to_dict() == before.to_dict()  # the caller's config is not changed
    pool = built.train_dataloader.dataset
    assert pool.type == 'ConcatDataset' and len(pool.datasets) == 2
    own_part, extra_part = pool.datasets
    # 256 px tiles weigh their area over the extra images' mean (96-256 px): the own part repeated, the extra once
    assert own_part.type == 'RepeatDataset' and own_part.times > 1
    assert own_part.dataset == before.train_dataloader.dataset  # the recipe's own training set, as it was
    assert extra_part.type == 'CellInstanceDataset' and extra_part.data_root == str(synthetic_hw3)
    assert extra_part.split == 'all' and extra_part.val_names is None
    assert extra_part.pipeline == own_part.dataset.pipeline and extra_part.class_agnostic is True
    for split in ('val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator'):
        assert built[split] == before[split]  # extra data is never validated or tested on
    names = train_sample_names(built)
    assert not set(val) & set(names)
    assert sorted(set(names)) == sorted(set(own) - set(val) | set(extra))
    assert all(names.count(n) == own_part.times for n in set(own) - set(val))
    assert all(names.count(n) == 1 for n in extra)


def test_seeded_split_is_excluded_as_the_dataset_makes_it(synthetic_hw3, tiles):
    """A config with a seeded ``val_ratio`` split (the quickstart): the validation samples the dataset holds out are
    excluded from the pool's area and count, and never trained on."""
    own, extra = sample_names(synthetic_hw3), sample_names(tiles)
    cfg = load_config(str(QUICKSTART), None, str(synthetic_hw3))
    val = split_samples(own, 'val', cfg.train_dataloader.dataset.val_ratio, cfg.train_dataloader.dataset.seed)
    assert val and set(val) < set(own)
    names = train_sample_names(train_config_with_extra(cfg, [tiles]))
    assert not set(val) & set(names)
    assert set(names) == set(own) - set(val) | set(extra)


def test_train_py_trains_on_the_pool(tiles, synthetic_hw3, tmp_path, monkeypatch):
    """``tools/train.py --extra-train ROOT`` hands the Runner exactly :func:`train_config_with_extra`'s config."""
    train = load_script('tools/train.py')
    seen = []

    class FakeRunner:
        @classmethod
        def from_cfg(cls, cfg):
            seen.append(cfg)
            return cls()

        def train(self):
            pass

    monkeypatch.setattr(train, 'Runner', FakeRunner)
    train.main([str(QUICKSTART), '--work-dir', str(tmp_path / 'work'), '--data-root', str(synthetic_hw3),
                '--extra-train', str(tiles)])
    expected = train_config_with_extra(load_config(str(QUICKSTART), None, str(synthetic_hw3)), [tiles])
    assert len(seen) == 1 and seen[0].train_dataloader.dataset == expected.train_dataloader.dataset
    assert seen[0].val_dataloader == expected.val_dataloader


def test_bad_extra_folders_one_line_each(tiles, synthetic_hw3, tmp_path, capsys):
    """A missing folder, a folder that is no HW3 data root, the training data root itself, one sharing a sample
    name with it or with an earlier extra folder, and a config whose training set holds two data sets (a
    ConcatDataset: no one data root to join; a single wrapped one is joined, test_dataset_config.py): one line
    naming it, a non-zero exit, nothing written."""
    not_hw3 = tmp_path / 'not_hw3'
    (not_hw3 / 'images').mkdir(parents=True)
    overlap = tmp_path / 'overlap'
    (overlap / 'train').mkdir(parents=True)
    first = sample_names(synthetic_hw3)[0]
    (overlap / 'train' / first).symlink_to(synthetic_hw3 / 'train' / first)
    wrapped = tmp_path / 'wrapped.py'
    wrapped.write_text(f'_base_ = [{str(QUICKSTART)!r}]\ntrain_dataloader = dict(dataset=dict(_delete_=True, '
                       'type="ConcatDataset", datasets=[dict(type="CellInstanceDataset", data_root="x"), '
                       'dict(type="RepeatDataset", times=2, dataset=dict(type="CellInstanceDataset", data_root="y"))]))'
                       '\n')
    main = load_script('tools/train.py').main
    work = tmp_path / 'work'
    cases = [
        (QUICKSTART, [tmp_path / 'missing'], 'extra training data not found', tmp_path / 'missing'),
        (QUICKSTART, [not_hw3], 'training folder not found', not_hw3),
        (QUICKSTART, [synthetic_hw3], 'the extra training data is the training data root itself', synthetic_hw3),
        (QUICKSTART, [overlap], f'shares 1 sample name(s) with {synthetic_hw3}', overlap),
        (QUICKSTART, [tiles, tiles], f'shares 5 sample name(s) with {tiles}', tiles),
        (wrapped, [tiles], '--extra-train: the training set holds 2 CellInstanceDataset configs (a ConcatDataset of '
         'CellInstanceDataset, CellInstanceDataset); one is needed', wrapped),
    ]
    for config, extra, needle, named in cases:
        argv = [str(config), '--work-dir', str(work), '--data-root', str(synthetic_hw3)]
        for root in extra:
            argv += ['--extra-train', str(root)]
        with pytest.raises(SystemExit) as exc:
            main(argv)
        printed = capsys.readouterr()
        message = exc.value.code if isinstance(exc.value.code, str) else printed.err.strip()
        assert exc.value.code not in (0, None) and len(message.splitlines()) == 1, message
        assert needle in message and str(named) in message, message
        assert 'Traceback' not in printed.out + printed.err + message
        assert not work.exists()
