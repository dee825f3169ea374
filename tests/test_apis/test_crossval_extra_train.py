"""More data screened by the protocol: ``cross_validate(..., extra_train=[ROOT])`` / ``--extra-train ROOT``.

The extra data root's samples join every fold's training set (an mmengine ConcatDataset, the pool drawn by pixel
area), never its held-out tiles; each fold file records it and a kept fold of other extra data is refused. Runs on
the synthetic generator; training and scoring are stubbed (the datasets the Runner would train on are built for
real), so no model is trained here.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmcell.apis import crossval
from mmcell.apis.crossval import fold_train_config, organ_folds
from mmcell.datasets.extra_train import extra_train_parts
from mmcell.utils.errors import InputError
from mmcell.utils.setup_env import load_config
from tests.conftest import REPO, load_script, sample_names, train_sample_names

RECIPE = REPO / 'configs' / 'monuseg' / 'mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2500i_monuseg.py'


@pytest.fixture(scope='module')
def tiles(tmp_path_factory) -> Path:
    """4 synthetic 'tiles' of 256 px: the cross-validated data (each its own group: 2 folds of 2)."""
    from mmcell.synthetic.hw3 import make_synthetic_hw3

    return make_synthetic_hw3(tmp_path_factory.mktemp('cv') / 'tiles', num_train=4, num_test=1, seed=7,
                              min_size=256, max_size=256)


def test_extra_data_joins_training_never_the_held_out_tiles(tiles, synthetic_hw3, tmp_path):
    own, extra = sample_names(tiles), sample_names(synthetic_hw3)
    val = organ_folds(own, 2)[0]
    parts = extra_train_parts(tiles, val, [synthetic_hw3])
    assert [p['samples'] for p in parts] == [2, 6]
    # 256 px tiles vs 96-256 px extra images: each tile weighs its area over the extra images' mean
    assert parts[1]['repeat'] == 1 and parts[0]['repeat'] == round(parts[0]['mean_area'] / parts[1]['mean_area']) > 1
    cfg = fold_train_config(load_config(str(RECIPE), None, str(tiles)), val, tmp_path, iters=10,
                            extra_parts=parts)
    names = train_sample_names(cfg)
    assert not set(val) & set(names)  # the fold's held-out tiles are never trained on
    assert sorted(set(names)) == sorted(set(own) - set(val) | set(extra))
    assert all(names.count(n) == parts[0]['repeat'] for n in set(own) - set(val))
    assert all(names.count(n) == 1 for n in extra)
    assert cfg.val_dataloader is None  # the fold is scored afterwards, on val_names of the cross-validated data only
    # without extra data the training set is the fold's own tiles, as before
    plain = fold_train_config(load_config(str(RECIPE), None, str(tiles)), val, tmp_path, iters=10)
    assert sorted(train_sample_names(plain)) == sorted(set(own) - set(val))


def test_cross_validate_with_extra_data_scores_the_folds_only(tiles, synthetic_hw3, tmp_path, monkeypatch):
    """The whole protocol with training and scoring stubbed: each fold's Runner gets the pooled training set, each
    fold is scored on its own held-out tiles of DATA_ROOT, the fold files record the extra data, and a resume with
    other extra data (or none) is refused before any training."""
    seen = []

    class FakeRunner:
        @classmethod
        def from_cfg(cls, cfg):
            seen.append(dict(train=train_sample_names(cfg)))
            return cls()

        def train(self):
            pass

    def fake_evaluate(cfg, checkpoint, data_root, names):
        seen[-1].update(scored=list(names), data_root=str(data_root), val=cfg.val_dataloader.dataset.get('data_root'))
        return dict(AP50=0.5, AP=0.2, AJI=0.4, **{'AJI+': 0.4}, PQ=0.4)

    monkeypatch.setattr(crossval, 'Runner', FakeRunner)
    monkeypatch.setattr(crossval, 'evaluate_tiles', fake_evaluate)
    results = tmp_path / 'results' / 'plus-extra'
    summary = crossval.cross_validate(RECIPE, tiles, tmp_path / 'work', num_folds=2, iters=4, test_scales=[1.25],
                                      mask_thrs=[0.4], results_dir=results, extra_train=[synthetic_hw3])
    own, extra = sample_names(tiles), sample_names(synthetic_hw3)
    folds = organ_folds(own, 2)
    assert summary['folds_done'] == [0, 1] and 'trained with hw3-data-release too' in summary['title']
    for k, fold in enumerate(seen):
        assert sorted(fold['scored']) == sorted(folds[k]) and fold['data_root'] == str(tiles)
        assert not set(fold['scored']) & set(extra) and not set(fold['scored']) & set(fold['train'])
        assert set(extra) <= set(fold['train'])
        kept = json.loads((results / f'fold{k}.json').read_text())
        assert kept['extra_train'] == [str(synthetic_hw3.resolve())]
        assert [(p['data_root'], p['samples']) for p in kept['train_parts']] == [(str(tiles), 2),
                                                                                  (str(synthetic_hw3), 6)]
    # a kept fold of this run is not retrained; one without the extra data is another run: refused
    crossval.cross_validate(RECIPE, tiles, tmp_path / 'work', num_folds=2, iters=4, test_scales=[1.25],
                            mask_thrs=[0.4], results_dir=results, extra_train=[synthetic_hw3])
    assert len(seen) == 2
    with pytest.raises(InputError, match=r"fold0.json: extra training data \['hw3-data-release'\], this run none"):
        crossval.cross_validate(RECIPE, tiles, tmp_path / 'work', num_folds=2, iters=4, results_dir=results)
    assert len(seen) == 2


def test_bad_extra_folders_one_line_before_anything_is_written(tiles, tmp_path, capsys):
    """A missing folder, a folder without samples, the cross-validated data itself, or one sharing its tile names
    (held-out tiles could leak into training): one line naming it, exit 2, nothing written."""
    empty = tmp_path / 'empty'
    (empty / 'train').mkdir(parents=True)
    copy = tmp_path / 'copy'
    (copy / 'train').mkdir(parents=True)
    (copy / 'train' / sample_names(tiles)[0]).symlink_to(Path(tiles) / 'train' / sample_names(tiles)[0])
    main = load_script('tools/analysis_tools/cross_validate.py').main
    work = tmp_path / 'work'
    for bad, needle in ((tmp_path / 'missing', 'extra training data not found'), (empty, 'no sample folders'),
                        (tiles, 'the extra training data is the training data root itself'),
                        (copy, f'shares 1 sample name(s) with {tiles}')):
        with pytest.raises(SystemExit) as exc:
            main([str(RECIPE), str(tiles), str(work), '--folds', '2', '--iters', '4', '--extra-train', str(bad)])
        message = exc.value.code if isinstance(exc.value.code, str) else capsys.readouterr().err.strip()
        assert exc.value.code not in (0, None) and len(message.splitlines()) == 1, message
        assert needle in message and str(bad) in message and 'Traceback' not in message
        assert not work.exists()
