"""The non-TensorFlow half of benchmarks/consep_vs_stardist.py (issue 25, item 5), on the synthetic HW3 set.

StarDist multi-class hands over label images, object probabilities and a class per cell (``<name>_classes.json``);
mmcell's ``evaluate_label_images`` scores them class-aware as the recipe's CV folds are scored. The ground truth as
the peer must score 1 on every figure, the same cells in the wrong class lose the class-aware figures only; a fold
runs on the CV's own grouped split, for the reference fold's training seconds, and its file tables beside the
recipe's in ``cross_validate.py --compare``. StarDist itself is faked here (no training, no TensorFlow).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from mmcell.apis.crossval import comparison_markdown, organ_folds
from mmcell.apis.evaluate import evaluate_label_images
from mmcell.utils.errors import InputError
from tests.conftest import load_script

CLASSES = ['other', 'inflammatory', 'epithelial', 'spindle']
RECIPE_SETTING = 'test 1.25x, mask thr 0.4'


@pytest.fixture(scope='module')
def modules():
    return load_script('benchmarks/consep_vs_stardist.py'), load_script('benchmarks/cellpose_train_predict.py')


def write_peer(folder: Path, name: str, labels: np.ndarray, classes: dict) -> None:
    """One tile as the StarDist side writes it: labels, a score and a class per cell."""
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / f'{name}_labels.tif', labels.astype(np.uint32))
    ids = [int(i) for i in np.unique(labels[labels > 0])]
    (folder / f'{name}_scores.json').write_text(json.dumps({i: 1.0 - 1e-4 * k for k, i in enumerate(ids)}))
    (folder / f'{name}_classes.json').write_text(json.dumps({i: classes[i] for i in ids}))


def test_read_sample_gives_each_cell_its_class_file(synthetic_hw3, modules):
    _, cellpose_side = modules
    for folder in sorted((synthetic_hw3 / 'train').iterdir()):
        img, labels, classes = cellpose_side.read_sample(folder, with_classes=True)
        assert set(np.unique(labels[labels > 0]).tolist()) <= set(classes)
        for class_file in folder.glob('class*.tif'):
            k = int(class_file.stem[5:])
            cmap = tifffile.imread(class_file)
            for cell in np.unique(cmap[cmap > 0])[:5]:  # the cell's pixels carry an id of class k
                ids = np.unique(labels[cmap == cell])
                assert len(ids) == 1 and classes[int(ids[0])] == k


def test_classes_scored_class_aware(synthetic_hw3, tmp_path, modules):
    """Ground truth with its classes scores 1 everywhere; every cell called 'other' keeps the class-agnostic
    figures at 1 and loses the class-aware ones; a cell without a class is one line naming the file."""
    _, cellpose_side = modules
    names = sorted(p.name for p in (synthetic_hw3 / 'train').iterdir())
    present = set()
    for name in names:
        _, labels, classes = cellpose_side.read_sample(synthetic_hw3 / 'train' / name, with_classes=True)
        present |= set(classes.values())
        write_peer(tmp_path / 'right', name, labels, classes)
        write_peer(tmp_path / 'all_other', name, labels, {i: 1 for i in classes})
    assert len(present) >= 2
    right = evaluate_label_images(synthetic_hw3, names, tmp_path / 'right', classes=CLASSES)
    assert set(right) == {'AP50', 'AP', 'AJI', 'AJI+', 'PQ', 'contest AP50', 'contest AP50 md1000',
                          *(f'AP50 {c}' for c in CLASSES), 'mPQ', *(f'PQ {c}' for c in CLASSES)}
    assert right['mPQ'] == pytest.approx(1.0) and right['PQ'] == pytest.approx(1.0)
    for k, name in enumerate(CLASSES, start=1):  # a class absent from the tiles is -1, as pycocotools
        assert right[f'AP50 {name}'] == pytest.approx(1.0 if k in present else -1.0)
    assert right['contest AP50'] == pytest.approx(1.0) and right['AP50'] == pytest.approx(1.0)
    wrong = evaluate_label_images(synthetic_hw3, names, tmp_path / 'all_other', classes=CLASSES)
    assert wrong['AP50'] == pytest.approx(1.0) and wrong['PQ'] == pytest.approx(1.0)  # bPQ: classes ignored
    assert wrong['mPQ'] < 0.9 and all(wrong[f'PQ {CLASSES[k - 1]}'] == 0.0 for k in present - {1})
    assert wrong['contest AP50'] < 0.9 and all(wrong[f'AP50 {CLASSES[k - 1]}'] == 0.0 for k in present - {1})
    # without classes: one class, as MoNuSeg's peers
    assert set(evaluate_label_images(synthetic_hw3, names, tmp_path / 'right')) == {'AP50', 'AP', 'AJI', 'AJI+', 'PQ'}
    (tmp_path / 'right' / f'{names[0]}_classes.json').write_text('{}')
    with pytest.raises(InputError, match=f'{names[0]}_classes.json: .* cells without a class in 1..4'):
        evaluate_label_images(synthetic_hw3, names, tmp_path / 'right', classes=CLASSES)


@pytest.fixture
def consep_like(synthetic_hw3, tmp_path):
    """The synthetic train tiles as a converted data root (with classes.json) and the recipe's fold files."""
    data = tmp_path / 'data'
    shutil.copytree(synthetic_hw3 / 'train', data / 'train')
    (data / 'classes.json').write_text(json.dumps(dict(classes=CLASSES)))
    names = sorted(p.name for p in (data / 'train').iterdir())
    folds = organ_folds(names, 2)
    reference = tmp_path / 'results' / 'recipe_at600'
    reference.mkdir(parents=True)
    for k, val in enumerate(folds):
        figures = dict(AP50=0.5, AP=0.2, AJI=0.3, **{'AJI+': 0.3}, PQ=0.3, **{'contest AP50': 0.4},
                       **{'contest AP50 md1000': 0.45}, **{f'AP50 {c}': 0.1 * (i + 1) for i, c in enumerate(CLASSES)})
        (reference / f'fold{k}.json').write_text(json.dumps(dict(fold=k, config='configs/consep/recipe.py',
                                                                 val_names=val, iters=600, train_s=100.0 + k,
                                                                 figures={RECIPE_SETTING: figures})))
    return data, folds, reference


def test_a_fold_on_the_cv_split_for_the_recipes_seconds(consep_like, tmp_path, modules, monkeypatch, capsys):
    """One fold: StarDist (faked: the ground truth) called on the CV's held-out tiles with the reference fold's
    train_s and the data's 4 classes, scored into a fold file that --compare tables beside the recipe."""
    bench, cellpose_side = modules
    data, folds, reference = consep_like
    calls = []

    def fake_stardist(cmd, log):
        cmd = [str(c) for c in cmd]
        calls.append(cmd)
        out = Path(cmd[3])
        val = cmd[cmd.index('--val') + 1:cmd.index('--budget-s')]
        for name in val:
            _, labels, classes = cellpose_side.read_sample(data / 'train' / name, with_classes=True)
            write_peer(out, name, labels, classes)
        (out / 'timing.json').write_text(json.dumps(dict(train_s=99.0, iterations=42, batch_size=4, patch=256,
                                                         predict_s={n: 0.5 for n in val})))
        return ''

    monkeypatch.setattr(bench, 'run', fake_stardist)
    monkeypatch.setattr(bench, 'ensure_peer_venv', lambda peer: Path('/venv-stardist/bin/python'))
    results = tmp_path / 'results' / 'stardist-multiclass_at600'
    argv = [str(data), str(tmp_path / 'work'), '--folds', '2', '--reference', str(reference), '--results-dir',
            str(results)]
    bench.main(argv + ['--fold', '1'])
    (cmd, ) = calls
    assert cmd[1] == 'benchmarks/stardist_train_predict.py' and cmd[cmd.index('--budget-s') + 1] == '101.0'
    assert cmd[cmd.index('--n-classes') + 1] == '4' and sorted(cmd[cmd.index('--val') + 1:
                                                                   cmd.index('--budget-s')]) == folds[1]
    result = json.loads((results / 'fold1.json').read_text())
    assert result['peer'] == 'stardist' and result['val_names'] == folds[1] and result['train_s'] == 99.0
    assert result['iters'] == 42 and result['budget_s'] == pytest.approx(101.0)
    assert result['reference'] == 'recipe_at600'
    (figures, ) = result['figures'].values()
    assert figures['contest AP50'] == pytest.approx(1.0) and figures['AP50'] == pytest.approx(1.0)
    printed = capsys.readouterr().out
    assert '| 1 | 101 / 99 | 0.400 / 1.000 (0.40x) |' in printed  # the --table rows, printed after the fold
    # the fold file in the shape of the recipe's: --compare tables both, StarDist at its own setting
    md = comparison_markdown(tmp_path / 'results', 'recipe_at600')
    assert '| stardist-multiclass_at600 | 1 | 99 | 1.000 |' in md and 'contest AP50' in md
    # a fold done is not run again; a reference whose fold held out other tiles stops with one line
    with pytest.raises(SystemExit, match='fold1.json: fold 1 is done'):
        bench.main(argv + ['--fold', '1'])
    bad = json.loads((reference / 'fold0.json').read_text())
    (reference / 'fold0.json').write_text(json.dumps(dict(bad, val_names=folds[1])))
    with pytest.raises(SystemExit, match='fold0.json: held out .* not the same folds'):
        bench.main(argv + ['--fold', '0'])
    assert len(calls) == 1 and not (results / 'fold0.json').exists()
