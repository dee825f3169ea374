"""The CoNSeP 4-class recipe: tools/misc/consep_cpu.sh and consep_cv.sh end to end on a CoNSeP-layout source
drawn by the synthetic generator (``.mat`` labels, 4 classes, patches ``train_<image>_<patch>``), and the
class-aware figures the protocol scores (contest AP50 and per-class AP50)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmcell.apis.crossval import organ_folds
from mmcell.apis.evaluate import TILE_FIGURES, score_tile_samples
from mmcell.structures.rle import crop_rle
from tests.conftest import REPO, run_tool
from tests.test_datasets.converter_fixtures import write_consep

RECIPE = REPO / 'configs' / 'consep' / 'mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2400i_consep.py'
CLASSES = ('other', 'inflammatory', 'epithelial', 'spindle')
TRAIN_ARGS = ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
              'train_dataloader.batch_size=2', 'randomness.seed=0']


def consep_source(src: Path, train_images: int = 1) -> list:
    """The recipe's 32 val patches (source images 2 and 15) and 2 patches of each of ``train_images`` others."""
    val = list(Config.fromfile(str(RECIPE)).val_dataloader.dataset.val_names)
    stems = sorted(val + [f'train_{30 + i}_{p:03d}' for i in range(train_images) for p in range(2)])
    write_consep(src, stems, size=(72, 72), overlay=False)
    return stems


def test_recipe_is_a_4_class_diff_of_the_monuseg_one():
    cfg = Config.fromfile(str(RECIPE))
    assert cfg.model.roi_head.bbox_head.num_classes == 4 and cfg.model.roi_head.mask_head.num_classes == 4
    assert cfg.train_dataloader.dataset.metainfo['classes'] == CLASSES
    assert cfg.train_dataloader.dataset.class_agnostic is False
    assert cfg.model.roi_head.bbox_head.loss_cls.class_weight == [1.0, 1.0, 1.0, 1.0, 1.0]  # by the CV pair
    assert cfg.default_hooks.checkpoint.save_best == 'coco/segm_mAP_50'
    # 40x like MoNuSeg: the same training and test scale
    assert cfg.scale == cfg.test_scale == 1.25 and cfg.precision == 'auto'


def _square(x: int, y: int, size: int = 64) -> dict:
    mask = np.zeros((8, 8), bool)
    mask[1:7, 1:7] = True
    return crop_rle(mask, x, y, size, size)


def test_class_aware_figures_count_the_class():
    """Every nucleus found and outlined: class-agnostic AP50 1; the contest AP50 drops with the wrong class."""
    boxes = [(4, 4), (20, 4), (36, 4), (4, 30)]
    gt_labels = [0, 1, 2, 3]

    def sample(pred_labels):
        rles = [_square(x, y) for x, y in boxes]
        return [dict(img_id=0, ori_shape=(64, 64), instances=[
            dict(bbox=[x + 1, y + 1, x + 7, y + 7], bbox_label=c, mask=r, ignore_flag=0)
            for (x, y), c, r in zip(boxes, gt_labels, rles)], pred_instances=dict(
                bboxes=torch.tensor([[x + 1, y + 1, x + 7, y + 7] for x, y in boxes], dtype=torch.float32),
                scores=torch.tensor([0.9, 0.8, 0.7, 0.6]), labels=torch.tensor(pred_labels), masks=rles))]

    right = score_tile_samples(sample(gt_labels), 0.5, classes=CLASSES)
    assert list(right)[:len(TILE_FIGURES)] == list(TILE_FIGURES)
    assert right['AP50'] == pytest.approx(1.0) and right['contest AP50'] == pytest.approx(1.0)
    assert all(right[f'AP50 {c}'] == pytest.approx(1.0) for c in CLASSES)
    wrong = score_tile_samples(sample([1, 0, 2, 3]), 0.5, classes=CLASSES)  # other <-> inflammatory swapped
    assert wrong['AP50'] == pytest.approx(1.0)
    assert wrong['AP50 other'] == 0.0 and wrong['AP50 inflammatory'] == 0.0 and wrong['AP50 spindle'] == 1.0
    assert wrong['contest AP50'] == pytest.approx(0.5)
    # one image, one nucleus per class, IoU 1: bPQ 1; PQ other and inflammatory 0 (TP 0, FP 1, FN 1), epithelial
    # and spindle 1 (SQ = 1 / (1 + 1e-6)): mPQ = (0 + 0 + 1 + 1) / 4 = 0.5
    assert right['mPQ'] == pytest.approx(1.0) and wrong['PQ'] == pytest.approx(1.0)
    assert wrong['mPQ'] == pytest.approx(0.5) and wrong['PQ other'] == 0.0 and wrong['PQ spindle'] == pytest.approx(1.0)
    assert set(score_tile_samples(sample(gt_labels), 0.5)) == set(TILE_FIGURES)  # one class: as before


def test_results_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    from tests.conftest import load_script

    write_consep(tmp_path / 'src', [f'train_{i}_000' for i in range(1, 3)], overlay=False)
    run_tool(sys.executable, 'tools/dataset_converters/to_hw3.py', '--format', 'consep', str(tmp_path / 'src'),
             str(tmp_path / 'data'))
    (tmp_path / 'results').write_text('not a folder')
    with pytest.raises(SystemExit) as exc:
        load_script('tools/analysis_tools/cross_validate.py').main(
            [str(RECIPE), str(tmp_path / 'data'), str(tmp_path / 'work'), '--folds', '2',
             '--results-dir', str(tmp_path / 'results')])
    msg = exc.value.code
    assert isinstance(msg, str) and '\n' not in msg and str(tmp_path / 'results') in msg, msg
    assert 'Traceback' not in capsys.readouterr().err and not (tmp_path / 'work').exists()  # nothing written


@pytest.mark.slow
def test_consep_cpu_script(tmp_path):
    pytest.importorskip('mmcv.ops')
    pytest.importorskip('scipy.io')
    stems = consep_source(tmp_path / 'src')
    work = tmp_path / 'work'
    proc = run_tool('bash', 'tools/misc/consep_cpu.sh', str(tmp_path / 'src'), str(work),
                    '--cfg-options', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                    'default_hooks.checkpoint.interval=4', 'model.test_cfg.rcnn.max_per_img=100',
                    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False', *TRAIN_ARGS,
                    env={'PY': sys.executable, 'OMP_NUM_THREADS': '1'}, timeout=900)
    out = proc.stdout
    assert sorted(p.name for p in (work / 'data' / 'train').iterdir()) == stems
    assert json.loads((work / 'data' / 'classes.json').read_text())['classes'] == list(CLASSES)
    assert re.search(r'contest AP50 \(4 classes\)\s+[0-9.]+', out), out[-2000:]
    assert re.search(r'AP50 other\s+[0-9.]+', out), out[-2000:]
    # the script's closing lines, last (the converter prints a 'config:' hint of its own earlier)
    lines = out.strip().splitlines()
    assert lines[-2].startswith('config:') and lines[-1].startswith('best checkpoint:')
    config = Path(lines[-2].split()[-1])
    best = Path(lines[-1].split()[-1])
    assert config.is_file() and best.is_file() and best.name.startswith('best_coco_segm_mAP_50_iter_')
    cfg = Config.fromfile(str(config))
    assert cfg.model.roi_head.bbox_head.num_classes == 4 and cfg.model.roi_head.mask_head.num_classes == 4
    assert cfg.train_dataloader.dataset.metainfo['classes'] == CLASSES
    assert cfg.train_cfg.max_iters == 4 and cfg.model.test_cfg.rcnn.max_per_img == 100
    assert 'coco/segm_mAP_50 at 4 iter is saved' in (work / 'train.log').read_text()


@pytest.mark.slow
def test_consep_cv_script_grouped_by_source_image(tmp_path):
    """2 folds grouped by source image, the per-fold JSONs and summary in --results-dir, class-aware figures."""
    pytest.importorskip('mmcv.ops')
    pytest.importorskip('scipy.io')
    stems = consep_source(tmp_path / 'src', train_images=2)
    work, results = tmp_path / 'cv', tmp_path / 'results' / 'tag'
    proc = run_tool('bash', 'tools/misc/consep_cv.sh', str(tmp_path / 'src'), str(work), '--folds', '2',
                    '--iters', '2', '--results-dir', str(results), '--cfg-options', *TRAIN_ARGS,
                    env={'PY': sys.executable, 'OMP_NUM_THREADS': '1'}, timeout=900)
    folds = json.loads((results / 'folds.json').read_text())
    assert [f['val_names'] for f in folds] == organ_folds(stems, 2)
    for fold in folds:  # a source image's patches never split
        assert not {n.rsplit('_', 1)[0] for n in fold['val_names']} & {
            n.rsplit('_', 1)[0] for f in folds if f is not fold for n in f['val_names']}
    summary = json.loads((results / 'cv_summary.json').read_text())
    assert summary['folds_done'] == [0, 1] and summary['iters'] == [2]
    figures = ['AP50', 'AP', 'AJI', 'AJI+', 'PQ', 'contest AP50', 'contest AP50 md1000'] + [
        f'AP50 {c}' for c in CLASSES] + ['mPQ'] + [f'PQ {c}' for c in CLASSES]
    for k in (0, 1):
        result = json.loads((results / f'fold{k}.json').read_text())
        assert list(next(iter(result['figures'].values()))) == figures
        assert (work / f'fold{k}' / 'iter_2.pth').is_file() and not (work / f'fold{k}' / 'figures.json').exists()
    assert list(next(iter(summary['settings'].values()))) == figures
    md = (results / 'cv_summary.md').read_text()
    assert 'contest AP50' in md and 'AP50 other' in md and ('(train_15' in md or '(train_2' in md)
    assert 'folds done: [0, 1] of 2' in proc.stdout
