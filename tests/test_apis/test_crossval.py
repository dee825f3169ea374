"""The validation protocol (mmcell.apis.crossval, tools/misc/monuseg_cv.sh) end to end on synthetic tiles.

The 13 synthetic tiles carry the real MoNuSeg 2018 training stems, so the organ grouping is the real one; the
recipe trains 2 folds for a few iterations each and every fold is scored at two test scales.
"""
from __future__ import annotations

import json
import math
import sys

import pytest
from mmengine.config import Config

from mmcell.apis import crossval
from mmcell.apis.crossval import (
    cv_group_of,
    organ_folds,
    organ_of,
    screening_config,
    source_image_of,
    summarize,
    with_test_setting,
)
from mmcell.utils.errors import InputError
from tests.conftest import REPO, load_script, run_tool
from tests.test_tools.test_monuseg_recipe import write_monuseg_like

RECIPE = REPO / 'configs' / 'monuseg' / 'mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py'
MONUSEG_TRAIN = ['TCGA-21-5784-01Z-00-DX1', 'TCGA-21-5786-01Z-00-DX1', 'TCGA-50-5931-01Z-00-DX1',
                 'TCGA-A7-A13E-01Z-00-DX1', 'TCGA-AR-A1AK-01Z-00-DX1', 'TCGA-AR-A1AS-01Z-00-DX1',
                 'TCGA-B0-5698-01Z-00-DX1', 'TCGA-B0-5710-01Z-00-DX1', 'TCGA-B0-5711-01Z-00-DX1',
                 'TCGA-CH-5767-01Z-00-DX1', 'TCGA-E2-A1B5-01Z-00-DX1', 'TCGA-G9-6362-01Z-00-DX1',
                 'TCGA-NH-A8F7-01A-01-TS1']


def test_monuseg_folds_group_organs():
    assert [organ_of(n) for n in MONUSEG_TRAIN[:4]] == ['lung', 'lung', 'lung', 'breast']
    folds = organ_folds(MONUSEG_TRAIN, 4)
    assert [sorted({organ_of(n) for n in f}) for f in folds] == [
        ['breast'], ['kidney'], ['lung'], ['colon', 'prostate']]
    assert sorted(sum(folds, [])) == sorted(MONUSEG_TRAIN)  # a partition
    two = organ_folds(MONUSEG_TRAIN, 2)
    assert sorted(map(len, two)) == [6, 7]
    for f in two:  # no organ on both sides
        assert not {organ_of(n) for n in f} & {organ_of(n) for g in two if g is not f for n in g}
    with pytest.raises(ValueError, match='organs'):
        organ_folds(MONUSEG_TRAIN, 6)  # 5 organs
    assert organ_of('my-tile') == 'my-tile' and organ_of('TCGA-ZZ-1') == 'TCGA site ZZ'


def test_consep_patches_grouped_by_source_image():
    """CoNSeP patches ``train_<image>_<patch>``: the patches of one image never land in two folds."""
    names = [f'train_{image}_{patch:03d}' for image in (1, 2, 3, 10, 11) for patch in range(4 if image < 10 else 2)]
    assert source_image_of('train_12_003') == 'train_12' and source_image_of('train_12') is None
    assert source_image_of('TCGA-21-5784-01Z-00-DX1') is None
    assert cv_group_of('train_10_001') == 'train_10' and cv_group_of('TCGA-A7-A13E-01Z-00-DX1') == 'breast'
    folds = organ_folds(names, 3)
    assert sorted(sum(folds, [])) == sorted(names)
    groups = [{cv_group_of(n) for n in f} for f in folds]
    assert all(not a & b for i, a in enumerate(groups) for b in groups[i + 1:])  # no image on both sides
    assert groups == [{'train_1', 'train_10'}, {'train_2', 'train_11'}, {'train_3'}] and sorted(map(len, folds)) == \
        [4, 6, 6]
    with pytest.raises(ValueError, match='source images'):
        organ_folds(names, 6)


def test_screening_schedule_and_test_settings():
    cfg = Config.fromfile(str(RECIPE))
    short = screening_config(cfg, 350)  # a quarter of 1,400
    warm, cosine = short.param_scheduler
    assert short.train_cfg.max_iters == 350 and warm.end == 25 and cosine.end == 350 and cosine.T_max == 350
    assert cfg.train_cfg.max_iters == 1400  # the original is left alone
    other = with_test_setting(cfg, scale=1.5, mask_thr=0.6)
    resize = [s for s in other.test_dataloader.dataset.pipeline if s['type'] == 'Resize']
    assert resize[0]['scale_factor'] == 1.5 and other.model.test_cfg.rcnn.mask_thr_binary == 0.6


def test_summary_mean_std_and_paired_difference():
    folds = [dict(fold=k, val_names=['a'], train_s=1.0, figures={
        'A': dict(AP50=a, AP=0.3, AJI=0.5, **{'AJI+': 0.5}, PQ=0.5),
        'B': dict(AP50=a + 0.02, AP=0.3, AJI=0.5, **{'AJI+': 0.5}, PQ=0.5)}) for k, a in enumerate((0.6, 0.7, 0.8))]
    out = summarize(folds)
    assert out['settings']['A']['AP50']['mean'] == pytest.approx(0.7)
    assert out['settings']['A']['AP50']['std'] == pytest.approx(0.1)
    # the fold-to-fold spread (0.1) is large, the paired difference is exact (+0.02, std 0)
    assert out['paired_difference']['B']['AP50']['mean'] == pytest.approx(0.02)
    assert out['paired_difference']['B']['AP50']['std'] == pytest.approx(0.0, abs=1e-12)


SETTING = 'test 1.25x, mask thr 0.4'
BF16_RECIPE = REPO / 'configs' / 'monuseg' / 'mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2500i_monuseg.py'


@pytest.mark.parametrize('units, wrapper', [(dict(avx512_bf16=True, amx=False, vnni=True), 'BF16AutocastOptimWrapper'),
                                            (dict(avx512_bf16=False, amx=False, vnni=False), 'OptimWrapper')])
def test_a_fold_trains_at_the_configs_precision(monkeypatch, tmp_path, units, wrapper):
    """The bf16 recipe's precision='auto' holds in the protocol too (it used to train every fold in fp32)."""
    from mmcell.utils import precision

    monkeypatch.setattr(precision, 'cpu_matrix_units', lambda: dict(units))
    cfg = crossval.fold_train_config(Config.fromfile(str(BF16_RECIPE)), MONUSEG_TRAIN[:3], tmp_path, iters=500)
    assert cfg.optim_wrapper.type == wrapper and cfg.train_cfg.max_iters == 500
    fp32 = crossval.fold_train_config(Config.fromfile(str(RECIPE)), MONUSEG_TRAIN[:3], tmp_path, iters=280)
    assert fp32.optim_wrapper.type == 'OptimWrapper'


def _fold_file(folder, k, ap50, iters=280, config='configs/monuseg/recipe.py', train_s=300.0):
    figures = dict(AP50=ap50, AP=ap50 / 2, AJI=0.5, **{'AJI+': 0.5}, PQ=0.4)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f'fold{k}.json').write_text(json.dumps(dict(
        fold=k, config=config, val_names=organ_folds(MONUSEG_TRAIN, 4)[k], iters=iters, train_s=train_s,
        figures={SETTING: figures})))


def test_comparison_rebuilds_from_the_fold_files_alone(tmp_path, capsys):
    """Two configs' committed fold files (one config 3 folds behind) -> mean ± std per config and the paired
    difference over the folds both have done; no model, no data, and the same table every time."""
    root = tmp_path / 'monuseg_cv'
    for k, ap50 in enumerate((0.60, 0.70, 0.50, 0.55)):
        _fold_file(root / 'fp32_280i', k, ap50)
    for k, ap50 in enumerate((0.63, 0.69, 0.56)):  # fold 3 not done yet
        _fold_file(root / 'bf16_500i', k, ap50, iters=500, train_s=200.0)
    load_script('tools/analysis_tools/cross_validate.py').main(['--compare', str(root), '--reference', 'fp32_280i'])
    printed = capsys.readouterr().out
    summary = json.loads((root / 'summary.json').read_text())
    assert list(summary['settings']) == ['fp32_280i', 'bf16_500i'] and summary['setting'] == SETTING
    ref, other = summary['settings']['fp32_280i']['AP50'], summary['settings']['bf16_500i']['AP50']
    assert ref['n'] == 4 and ref['mean'] == pytest.approx(0.5875) and other['n'] == 3
    assert other['mean'] == pytest.approx(0.6267, abs=1e-4)
    diff = summary['paired_difference']['bf16_500i']['AP50']  # over folds 0-2 only: +0.03, -0.01, +0.06
    assert diff['folds'] == [0, 1, 2] and diff['mean'] == pytest.approx(0.08 / 3)
    assert diff['std'] == pytest.approx(float(__import__('numpy').std([0.03, -0.01, 0.06], ddof=1)))
    assert summary['train_s']['bf16_500i']['mean'] == pytest.approx(200.0)
    md = (root / 'summary.md').read_text()
    assert md.strip() in printed
    assert '| bf16_500i | 3 | 200 | 0.627 ± ' in md and '| bf16_500i | 3 | +0.027 ± 0.035 |' in md
    assert 'fp32_280i: 280 iterations; bf16_500i: 500 iterations' in md and '| 3 | 3 (colon, prostate) |' in md
    crossval.comparison_markdown(root, 'fp32_280i')
    assert (root / 'summary.md').read_text() == md  # rebuilt from the files alone: the same
    # another run's fold 1 held out other tiles: refused, naming it
    bad = json.loads((root / 'bf16_500i' / 'fold1.json').read_text())
    (root / 'bf16_500i' / 'fold1.json').write_text(json.dumps(dict(bad, val_names=['TCGA-21-5784-01Z-00-DX1'])))
    with pytest.raises(InputError, match='bf16_500i: fold 1 held out'):
        crossval.comparison_markdown(root, 'fp32_280i')


def test_kept_fold_files_are_not_trained_again(tmp_path, monkeypatch):
    """cross_validate with a results folder: folds whose file exists are read, not trained; a kept file of another
    schedule is refused before any training."""
    data = tmp_path / 'data'
    for name in MONUSEG_TRAIN:
        (data / 'train' / name).mkdir(parents=True)
    results = tmp_path / 'results' / 'recipe_280i'
    for k, ap50 in enumerate((0.60, 0.70, 0.50, 0.55)):
        _fold_file(results, k, ap50, config=str(RECIPE))

    def no_training(*args, **kwargs):
        raise AssertionError('a kept fold was trained again')

    monkeypatch.setattr(crossval, 'run_fold', no_training)
    summary = crossval.cross_validate(RECIPE, data, tmp_path / 'work', iters=280, results_dir=results)
    assert summary['folds_done'] == [0, 1, 2, 3] and summary['settings'][SETTING]['AP50']['mean'] == \
        pytest.approx(0.5875)
    assert '4 of 4 folds' in (results / 'cv_summary.md').read_text()  # the summary beside its fold files
    with pytest.raises(InputError, match='fold0.json: 280 iterations, this run 500'):
        crossval.cross_validate(RECIPE, data, tmp_path / 'work', iters=500, results_dir=results)


def test_kept_folds_are_scored_at_a_new_test_setting_from_their_checkpoints(tmp_path, monkeypatch):
    """A test setting asked for after the folds ran: each kept fold is scored at it from its checkpoint (no
    training), its file gains the figures (the old ones untouched), the summary pairs the settings on the same
    models; a fold whose checkpoint is gone is refused in one line naming the file, and nothing is written."""
    data = tmp_path / 'data'
    for name in MONUSEG_TRAIN:
        (data / 'train' / name).mkdir(parents=True)
    results, work = tmp_path / 'results' / 'recipe_280i', tmp_path / 'work'
    for k, ap50 in enumerate((0.60, 0.70, 0.50, 0.55)):
        _fold_file(results, k, ap50, config=str(RECIPE))
        (work / f'fold{k}').mkdir(parents=True)
        (work / f'fold{k}' / 'iter_280.pth').write_bytes(b'kept')
    scored = []

    def fake_evaluate(cfg, checkpoint, root, names):
        scored.append((cfg.model.test_cfg.rcnn.mask_thr_binary, checkpoint, sorted(names)))
        return dict(AP50=0.9, AP=0.45, AJI=0.6, **{'AJI+': 0.6}, PQ=0.5)

    monkeypatch.setattr(crossval, 'run_fold', lambda *a, **k: pytest.fail('a kept fold was trained again'))
    monkeypatch.setattr(crossval, 'evaluate_tiles', fake_evaluate)
    summary = crossval.cross_validate(RECIPE, data, work, iters=280, mask_thrs=(None, 0.5), results_dir=results,
                                      only_folds=[0, 1, 2, 3])
    folds = organ_folds(MONUSEG_TRAIN, 4)
    assert scored == [(0.5, str(work / f'fold{k}' / 'iter_280.pth'), sorted(folds[k])) for k in range(4)]
    new = 'test 1.25x, mask thr 0.5'
    kept = json.loads((results / 'fold1.json').read_text())
    assert list(kept['figures']) == [SETTING, new] and kept['figures'][SETTING]['AP50'] == 0.70
    assert summary['paired_difference'][new]['AP50']['mean'] == pytest.approx(0.9 - 0.5875)
    # asked again: nothing left to score
    crossval.cross_validate(RECIPE, data, work, iters=280, mask_thrs=(None, 0.5), results_dir=results)
    assert len(scored) == 4
    # a third setting, fold 2's checkpoint gone: refused before anything is scored or written
    (work / 'fold2' / 'iter_280.pth').unlink()
    before = {p.name: p.read_text() for p in results.iterdir()}
    with pytest.raises(InputError, match=r'fold2.json: has no "test 1.25x, mask thr 0.3" figures and its checkpoint'):
        crossval.cross_validate(RECIPE, data, work, iters=280, mask_thrs=(0.3, ), results_dir=results)
    assert len(scored) == 4 and {p.name: p.read_text() for p in results.iterdir()} == before


@pytest.mark.slow
def test_monuseg_cv_script_two_folds(tmp_path):
    """Convert, train 2 organ-grouped folds for a few iterations, score each at two test scales, summarise."""
    pytest.importorskip('mmcv.ops')
    assert write_monuseg_like(tmp_path / 'src', MONUSEG_TRAIN, size=160) > 13 * 5
    work = tmp_path / 'cv'
    proc = run_tool('bash', 'tools/misc/monuseg_cv.sh', str(tmp_path / 'src'), str(work), '--folds', '2',
                    '--iters', '6', '--test-scales', '1.25', '1.0',
                    '--cfg-options', 'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                    'train_dataloader.batch_size=2',
                    # a 6-iteration model scores proposals alike: 100 detections, not 1,000, per tile keep it quick
                    'model.test_cfg.rcnn.max_per_img=100',
                    env={'PY': sys.executable, 'OMP_NUM_THREADS': '1'}, timeout=900)
    folds = json.loads((work / 'folds.json').read_text())
    assert [f['val_names'] for f in folds] == organ_folds(MONUSEG_TRAIN, 2)
    summary = json.loads((work / 'cv_summary.json').read_text())
    assert summary['folds'] == 2 and summary['folds_done'] == [0, 1] and summary['iters'] == [6]
    assert list(summary['settings']) == ['test 1.25x, mask thr 0.4', 'test 1x, mask thr 0.4']
    for k, fold in enumerate(folds):
        result = json.loads((work / f'fold{k}' / 'figures.json').read_text())
        assert result['val_names'] == fold['val_names'] and result['iters'] == 6
        assert (work / f'fold{k}' / 'iter_6.pth').is_file()
        # each fold trained on the other organs only
        cfg = Config.fromfile(str(next((work / f'fold{k}').glob('*.py'))))
        assert sorted(cfg.train_dataloader.dataset.val_names) == sorted(fold['val_names'])
        for figs in result['figures'].values():
            assert set(figs) == {'AP50', 'AP', 'AJI', 'AJI+', 'PQ'}
            assert all(0.0 <= v <= 1.0 for v in figs.values()) and figs['AP50'] >= figs['AP']
    stats = summary['settings']['test 1x, mask thr 0.4']['AP50']
    values = [json.loads((work / f'fold{k}' / 'figures.json').read_text())['figures']['test 1x, mask thr 0.4']
              ['AP50'] for k in (0, 1)]
    assert stats['mean'] == pytest.approx(sum(values) / 2)
    assert stats['std'] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    md = (work / 'cv_summary.md').read_text()
    assert '± ' in md and 'Paired difference' in md and '(breast' in md and '2 of 2 folds' in md
    assert 'folds done: [0, 1] of 2' in proc.stdout
    # a second call finds both folds done and trains nothing
    again = run_tool('bash', 'tools/misc/monuseg_cv.sh', str(tmp_path / 'src'), str(work), '--folds', '2',
                     '--iters', '6', '--test-scales', '1.25', '1.0', env={'PY': sys.executable})
    assert 'Iter(train)' not in again.stdout and json.loads((work / 'cv_summary.json').read_text()) == summary
    # a mask threshold asked for afterwards: both kept models scored at it from their checkpoints, nothing trained
    later = run_tool('bash', 'tools/misc/monuseg_cv.sh', str(tmp_path / 'src'), str(work), '--folds', '2',
                     '--iters', '6', '--mask-thrs', '0.5', '--cfg-options', 'model.test_cfg.rcnn.max_per_img=100',
                     env={'PY': sys.executable, 'OMP_NUM_THREADS': '1'}, timeout=600)
    new = 'test 1.25x, mask thr 0.5'
    assert 'Iter(train)' not in later.stdout and later.stdout.count(f'kept model scored at {new}') == 2
    summary = json.loads((work / 'cv_summary.json').read_text())
    assert list(summary['settings']) == ['test 1.25x, mask thr 0.4', 'test 1x, mask thr 0.4', new]
    for k in (0, 1):
        figs = json.loads((work / f'fold{k}' / 'figures.json').read_text())['figures'][new]
        assert set(figs) == {'AP50', 'AP', 'AJI', 'AJI+', 'PQ'} and figs['AP50'] >= figs['AP']
