"""The README's bad-input table, row by row, through the real command-line entry points.

Every row runs a command (``tools/*.py`` ``main(argv)`` or ``mmcell ...``) on one bad input and asserts what a user
sees: a non-zero exit, exactly one line, naming the bad file (or flag), no traceback, and no output left behind.
The crafted-checkpoint rows also run as real subprocesses and check that the payload did not run.
``python tests/test_tools/test_bad_input_table.py`` is not needed: ``ROWS`` is the table (README "Bad input").
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmcv.ops')

from mmcell.apis.crossval import organ_folds  # noqa: E402
from mmcell.datasets.hw3_format import list_train_samples  # noqa: E402
from mmcell.utils.checkpoint import TRUST_ENV  # noqa: E402
from tests.conftest import load_script  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TOOLS = {'train': 'tools/train.py', 'test': 'tools/test.py', 'predict': 'tools/predict.py',
         'check_submission': 'tools/misc/check_submission.py',
         'cross_validate': 'tools/analysis_tools/cross_validate.py'}


def _main(command: str):
    if command in ('segment', 'segment-slide'):
        from mmcell.cli import main

        return lambda argv: main([command, *argv])
    return load_script(TOOLS[command]).main


class _Payload:
    """A crafted checkpoint's ``meta``: unpickling it runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


@pytest.fixture(scope='module')
def bad(trained_quickstart, tmp_path_factory):
    """Every bad file of the table, made once."""
    root = tmp_path_factory.mktemp('bad_inputs')
    data = Path(trained_quickstart.data_root)
    ckpt = torch.load(trained_quickstart.checkpoint, weights_only=False)  # our own trusted file
    files = dict(config=trained_quickstart.config, ckpt=trained_quickstart.checkpoint, data=str(data),
                 marker=str(root / 'payload-ran'), out=str(root / 'out.zip'))
    text = root / 'notes.pth'
    text.write_text('this is not a checkpoint\n')
    truncated = root / 'truncated.pth'
    raw = Path(trained_quickstart.checkpoint).read_bytes()
    truncated.write_bytes(raw[:len(raw) // 3])
    crafted = root / 'crafted.pth'
    torch.save(dict(ckpt, meta=dict(ckpt['meta'], payload=_Payload(Path(files['marker'])))), crafted)
    empty_sd = root / 'empty_state.pth'
    torch.save({'state_dict': {}}, empty_sd)
    no_sd = root / 'no_state.pth'
    torch.save({'meta': {'epoch': 1}}, no_sd)
    partial = root / 'partial.pth'
    torch.save(dict(ckpt, state_dict={k: v for k, v in ckpt['state_dict'].items() if 'mask_head' not in k}), partial)
    blocker = root / 'a_file'
    blocker.write_text('x')
    no_ids = root / 'no_ids'
    shutil.copytree(data / 'test_release', no_ids / 'test_release')
    unlisted = root / 'unlisted'
    shutil.copytree(data / 'test_release', unlisted / 'test_release')
    shutil.copy(data / 'test_image_name_to_ids.json', unlisted)
    shutil.copy(next((data / 'test_release').glob('*.tif')), unlisted / 'test_release' / 'not-listed.tif')
    overlap = root / 'overlap'  # train --extra-train: a folder holding one of the training data's samples
    (overlap / 'train').mkdir(parents=True)
    first = list_train_samples(data)[0]
    (overlap / 'train' / first.name).symlink_to(first)
    empty_release = root / 'empty_release'
    (empty_release / 'test_release').mkdir(parents=True)
    (empty_release / 'test_image_name_to_ids.json').write_text('[]')
    no_images = root / 'no_images'
    no_images.mkdir()
    (no_images / 'readme.txt').write_text('x')
    broken_tif = root / 'broken.tif'
    tif = next((data / 'test_release').glob('*.tif')).read_bytes()
    broken_tif.write_bytes(tif[:len(tif) // 4])
    sub_text = root / 'sub.json'
    sub_text.write_text('{not json')
    sub_dict = root / 'dict.json'
    sub_dict.write_text(json.dumps({'image_id': 1}))
    sub_zip = root / 'wrong.zip'
    with zipfile.ZipFile(sub_zip, 'w') as zf:
        zf.writestr('results.json', '[]')
    broken_cfg = root / 'broken config.py'
    broken_cfg.write_text(f'_base_ = [{trained_quickstart.config!r}]\nmodel = dict(\n')  # unclosed: SyntaxError
    sub_ok = root / 'empty.json'
    sub_ok.write_text('[]')
    submission_cfg = root / 'submission_cfg.py'
    submission_cfg.write_text(f'_base_ = [{trained_quickstart.config!r}]\n'
                              "test_evaluator = dict(_delete_=True, type='CellSubmissionMetric', "
                              f'out_dir={str(blocker)!r})\n')
    cv_root = root / 'cv_results'  # cross_validate: committed fold files (a second folder with a broken one)
    (cv_root / 'recipe').mkdir(parents=True)
    (root / 'cv_broken' / 'other').mkdir(parents=True)
    folds = organ_folds([p.name for p in list_train_samples(data)], 2)
    (cv_root / 'recipe' / 'fold0.json').write_text(json.dumps(dict(
        fold=0, config=trained_quickstart.config, val_names=folds[0], iters=999, train_s=1.0,
        figures={'test 1x': dict(AP50=0.5, AP=0.2, AJI=0.4, **{'AJI+': 0.4}, PQ=0.4)})))
    (root / 'cv_broken' / 'other' / 'fold0.json').write_text('{"fold": 0, "figures": ')
    files.update(cv_root=str(cv_root), cv_kept=str(cv_root / 'recipe' / 'fold0.json'),
                 cv_broken_root=str(root / 'cv_broken'), cv_broken=str(root / 'cv_broken' / 'other' / 'fold0.json'))
    files.update(text=str(text), truncated=str(truncated), crafted=str(crafted), empty_sd=str(empty_sd),
                 no_sd=str(no_sd), partial=str(partial), blocker=str(blocker), no_ids=str(no_ids),
                 unlisted=str(unlisted), empty_release=str(empty_release), no_images=str(no_images),
                 broken_tif=str(broken_tif), sub_text=str(sub_text), sub_dict=str(sub_dict), sub_zip=str(sub_zip),
                 sub_ok=str(sub_ok), broken_cfg=str(broken_cfg), submission_cfg=str(submission_cfg),
                 work=str(root / 'work'), overlap=str(overlap),
                 missing=str(root / 'missing.pth'), missing_cfg=str(root / 'missing.py'),
                 missing_img=str(root / 'missing.tif'))
    return files


def _release(f):
    return ['--data-root', f['data']]


# (command, bad input, argv from the files, what the line says, the file it must name (a key of `bad`) or None)
ROWS = [
    ('train', 'config file missing', lambda f: [f['missing_cfg']], 'config file not found', 'missing_cfg'),
    ('train', 'load_from file missing', lambda f: [f['config'], '--work-dir', f['work'], '--cfg-options',
                                                   f'load_from={f["missing"]}'],
     'checkpoint file not found', 'missing'),
    ('train', '--resume file is not a checkpoint', lambda f: [f['config'], '--work-dir', f['work'], '--data-root',
                                                              f['data'], '--resume', f['text']],
     'not a PyTorch checkpoint', 'text'),
    ('train', '--resume checkpoint that would run code', lambda f: [f['config'], '--work-dir', f['work'],
                                                                    '--data-root', f['data'], '--resume', f['crafted']],
     'refused', 'crafted'),
    ('train', '--precision int8 (inference only)', lambda f: [f['config'], '--work-dir', f['work'], '--precision',
                                                                'int8'], "invalid choice: 'int8'", None),
    ('train', 'unknown flag', lambda f: [f['config'], '--epochs', '3'], 'unrecognized arguments: --epochs', None),
    ('train', '--extra-train: not an HW3 data root', lambda f: [f['config'], '--work-dir', f['work'], '--data-root',
                                                                f['data'], '--extra-train', f['no_images']],
     'training folder not found', 'no_images'),
    ('train', '--extra-train: the training data root itself',
     lambda f: [f['config'], '--work-dir', f['work'], '--data-root', f['data'], '--extra-train', f['data']],
     'the extra training data is the training data root itself', 'data'),
    ('train', '--extra-train: a folder sharing a sample with the training data',
     lambda f: [f['config'], '--work-dir', f['work'], '--data-root', f['data'], '--extra-train', f['overlap']],
     'shares 1 sample name(s) with', 'overlap'),
    ('test', 'checkpoint missing', lambda f: [f['config'], f['missing']], 'checkpoint file not found', 'missing'),
    ('test', 'checkpoint is a text file', lambda f: [f['config'], f['text'], '--work-dir', f['work']],
     'not a PyTorch checkpoint', 'text'),
    ('test', 'checkpoint truncated', lambda f: [f['config'], f['truncated'], '--work-dir', f['work']],
     'truncated or corrupt', 'truncated'),
    ('test', 'checkpoint with an empty state_dict', lambda f: [f['config'], f['empty_sd'], '--work-dir', f['work']],
     'state_dict is empty', 'empty_sd'),
    ('test', 'checkpoint that would run code', lambda f: [f['config'], f['crafted'], '--work-dir', f['work']],
     '--trust-checkpoint', 'crafted'),
    ('test', 'checkpoint of another class count', lambda f: [f['config'], f['ckpt'], '--work-dir', f['work'],
                                                             '--cfg-options', 'model.roi_head.bbox_head.num_classes=3',
                                                             'model.roi_head.mask_head.num_classes=3'],
     'trained for 4 classes', 'ckpt'),
    ('test', '--out not a .pkl', lambda f: [f['config'], f['ckpt'], '--out', 'preds.json'], 'must end with .pkl',
     None),
    ('test', '--tta with --tile', lambda f: [f['config'], f['ckpt'], '--tta', '--tile', '128'],
     'cannot be combined', None),
    ('test', 'submission out_dir is a file', lambda f: [f['submission_cfg'], f['ckpt'], '--work-dir', f['work']],
     'not a folder', 'blocker'),
    ('predict', 'config file missing', lambda f: [f['missing_cfg'], f['ckpt'], *_release(f), '--out', f['out']],
     'config file not found', 'missing_cfg'),
    ('predict', 'checkpoint missing', lambda f: [f['config'], f['missing'], *_release(f), '--out', f['out']],
     'checkpoint file not found', 'missing'),
    ('predict', 'checkpoint truncated', lambda f: [f['config'], f['truncated'], *_release(f), '--out', f['out']],
     'truncated or corrupt', 'truncated'),
    ('predict', 'checkpoint that would run code', lambda f: [f['config'], f['crafted'], *_release(f), '--out',
                                                             f['out']], 'refused', 'crafted'),
    ('predict', 'checkpoint without state_dict', lambda f: [f['config'], f['no_sd'], *_release(f), '--out', f['out']],
     'no state_dict', 'no_sd'),
    ('predict', 'checkpoint missing model weights', lambda f: [f['config'], f['partial'], *_release(f), '--out',
                                                               f['out']], 'are missing', 'partial'),
    ('predict', 'no ids json', lambda f: [f['config'], f['ckpt'], '--data-root', f['no_ids'], '--out', f['out']],
     'test ids file not found', 'no_ids'),
    ('predict', 'test image not in the ids json', lambda f: [f['config'], f['ckpt'], '--data-root', f['unlisted'],
                                                             '--out', f['out']], 'not-listed.tif', 'unlisted'),
    ('predict', 'empty test folder', lambda f: [f['config'], f['ckpt'], '--data-root', f['empty_release'], '--out',
                                                f['out']], 'no test images', 'empty_release'),
    ('predict', '--out in a folder that cannot be made', lambda f: [f['config'], f['ckpt'], *_release(f), '--out',
                                                                    f['blocker'] + '/x.zip'], 'not a folder',
     'blocker'),
    ('predict', '--out not .zip/.json', lambda f: [f['config'], f['ckpt'], *_release(f), '--out', 'results.txt'],
     '.zip (Codabench) or .json', None),
    ('predict', '--save-labels is a file', lambda f: [f['config'], f['ckpt'], *_release(f), '--out', f['out'],
                                                      '--save-labels', f['blocker']], 'not a folder', 'blocker'),
    ('predict', '--models spec without checkpoint', lambda f: [f['config'], f['ckpt'], *_release(f), '--out',
                                                               f['out'], '--models', f['config']],
     'expected CONFIG:CHECKPOINT', 'config'),
    ('predict', '--tta with --tile', lambda f: [f['config'], f['ckpt'], *_release(f), '--out', f['out'], '--tta',
                                                '--tile', '128'], 'cannot be combined', None),
    ('segment', 'image missing', lambda f: [f['missing_img'], '--config', f['config'], '--checkpoint', f['ckpt'],
                                            '--out', f['work']], 'no such image or folder', 'missing_img'),
    ('segment', 'folder without images', lambda f: [f['no_images'], '--config', f['config'], '--checkpoint',
                                                    f['ckpt'], '--out', f['work']], 'no images found', 'no_images'),
    ('segment', '--out is a file', lambda f: [f['data'] + '/test_release', '--config', f['config'], '--checkpoint',
                                              f['ckpt'], '--out', f['blocker']], 'not a folder', 'blocker'),
    ('segment', 'checkpoint is a text file', lambda f: [f['data'] + '/test_release', '--config', f['config'],
                                                        '--checkpoint', f['text'], '--out', f['work']],
     'not a PyTorch checkpoint', 'text'),
    ('segment', 'truncated image', lambda f: [f['broken_tif'], '--config', f['config'], '--checkpoint', f['ckpt'],
                                              '--out', f['work']], '', 'broken_tif'),
    ('segment', 'tile overlap not below the tile size', lambda f: [f['data'] + '/test_release', '--config',
                                                                   f['config'], '--checkpoint', f['ckpt'], '--out',
                                                                   f['work'], '--tile', '64', '--tile-overlap', '64'],
     'must be smaller than tile_size', None),
    ('segment', 'config with a syntax error', lambda f: [f['data'] + '/test_release', '--config', f['broken_cfg'],
                                                         '--checkpoint', f['ckpt'], '--out', f['work']],
     'not a usable config (SyntaxError', 'broken_cfg'),
    ('segment-slide', 'config with a syntax error',
     lambda f: [f['data'] + '/test_release', '--config', f['broken_cfg'], '--checkpoint', f['ckpt'], '--out',
                f['work'], '--mpp', '0.25'], 'not a usable config (SyntaxError', 'broken_cfg'),
    ('segment', '--engine openvino with --no-fast',
     lambda f: [f['data'] + '/test_release', '--config', f['config'], '--checkpoint', f['ckpt'], '--out',
                f['work'] + '_engine', '--engine', 'openvino', '--no-fast'],
     'engine openvino: OpenVINO runs the fast Mask R-CNN only', None),
    ('segment', '--precision int8-bf16 with --engine torch',
     lambda f: [f['data'] + '/test_release', '--config', f['config'], '--checkpoint', f['ckpt'], '--out',
                f['work'] + '_engine', '--precision', 'int8-bf16', '--engine', 'torch'],
     'precision int8-bf16: the OpenVINO int8 trunk with bf16 heads; needs --engine openvino', None),
    ('segment', 'missing required flag', lambda f: [f['missing_img']], 'the following arguments are required', None),
    ('predict', '--models: weight is not a number',
     lambda f: [f['config'], f['ckpt'], '--models', f'{f["config"]}:{f["ckpt"]}:heavy', *_release(f), '--out',
                f['out']], 'must be a number', 'ckpt'),
    ('predict', '--models: second checkpoint missing',
     lambda f: [f['config'], f['ckpt'], '--models', f'{f["config"]}:{f["missing"]}', *_release(f), '--out',
                f['out']], 'checkpoint file not found', 'missing'),
    ('predict', '--models: no ids json',
     lambda f: [f['config'], f['ckpt'], '--models', f'{f["config"]}:{f["ckpt"]}', '--data-root', f['no_ids'],
                '--out', f['out']], 'test ids file not found', 'no_ids'),
    ('predict', '--models: checkpoint that would run code',
     lambda f: [f['config'], f['ckpt'], '--models', f'{f["config"]}:{f["crafted"]}', *_release(f), '--out',
                f['out']], 'refused', 'crafted'),
    ('check_submission', 'file missing', lambda f: [f['missing'] + '.zip'], 'file not found', 'missing'),
    ('check_submission', 'not JSON', lambda f: [f['sub_text']], 'not valid JSON/zip', 'sub_text'),
    ('check_submission', 'JSON is not a list', lambda f: [f['sub_dict']], 'must be a list', 'sub_dict'),
    ('check_submission', 'zip without test-results.json', lambda f: [f['sub_zip']], 'test-results.json', 'sub_zip'),
    ('check_submission', 'ids json missing', lambda f: [f['sub_ok'], '--data-root', f['no_ids']],
     'test ids file not found', 'no_ids'),
    ('cross_validate', 'kept fold file of another schedule',
     lambda f: [f['config'], f['data'], f['work'], '--folds', '2', '--iters', '5', '--results-dir',
                str(Path(f['cv_kept']).parent)], '999 iterations, this run 5', 'cv_kept'),
    ('cross_validate', '--extra-train: no such folder',
     lambda f: [f['config'], f['data'], f['work'], '--folds', '2', '--iters', '5', '--extra-train', f['missing']],
     'extra training data not found', 'missing'),
    ('cross_validate', '--extra-train: the cross-validated data itself',
     lambda f: [f['config'], f['data'], f['work'], '--folds', '2', '--iters', '5', '--extra-train', f['data']],
     'the extra training data is the training data root itself', 'data'),
    ('cross_validate', '--compare: a fold file that is not JSON',
     lambda f: ['--compare', f['cv_broken_root'], '--reference', 'other'], 'Expecting value', 'cv_broken'),
    ('cross_validate', '--compare: unknown --reference', lambda f: ['--compare', f['cv_root'], '--reference', 'nope'],
     "no run 'nope'", 'cv_root'),
    ('cross_validate', '--compare without --reference', lambda f: ['--compare', f['cv_root']],
     '--compare ROOT needs --reference TAG', None),
]


@pytest.fixture(autouse=True)
def _untrusted(monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)


@pytest.fixture(autouse=True)
def _log_to_this_tests_stdout():
    """mmengine's loggers live across in-process runs; point their console handlers at this test's captured
    stdout (a handler still holding an earlier test's closed capture prints a "--- Logging error ---" traceback
    that a real one-process CLI run never has)."""
    from mmengine.logging import MMLogger

    for logger in list(MMLogger._instance_dict.values()):
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:
                handler.stream = sys.stdout  # setStream would flush the closed one


@pytest.mark.parametrize('command, bad_input, argv, needle, names', ROWS,
                         ids=[f'{r[0]}: {r[1]}' for r in ROWS])
def test_bad_input_row(command, bad_input, argv, needle, names, bad, capsys):
    out = Path(bad['out'])
    before = out.read_bytes() if out.exists() else None
    with pytest.raises(SystemExit) as exc:
        _main(command)(argv(bad))
    printed = capsys.readouterr()
    code = exc.value.code
    message = code if isinstance(code, str) else printed.err.strip()
    assert code not in (0, None), f'{command} accepted {bad_input}'
    assert 'Traceback' not in printed.out + printed.err + message
    lines = message.strip().splitlines()
    assert len(lines) == 1, lines
    assert needle in lines[0], lines[0]
    if names is not None:
        assert bad[names] in lines[0], lines[0]
    assert not Path(bad['marker']).exists(), 'a crafted checkpoint ran its payload'
    assert (out.read_bytes() if out.exists() else None) == before, 'an output was written or replaced'


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
@pytest.mark.parametrize('command', ['segment', 'segment-slide'])
def test_cuda_device_on_a_machine_without_cuda(command, bad, capsys):
    """``--device cuda:0`` without CUDA: one line saying which devices exist, before any model or output."""
    argv = [bad['data'] + '/test_release', '--config', bad['config'], '--checkpoint', bad['ckpt'], '--out',
            bad['work'] + '_cuda', '--device', 'cuda:0'] + (['--mpp', '0.25'] if command == 'segment-slide' else [])
    with pytest.raises(SystemExit) as exc:
        _main(command)(argv)
    printed = capsys.readouterr()
    assert exc.value.code == '--device cuda:0: this machine has no CUDA device (torch ' \
        f'{torch.__version__.split("+")[0]} sees none); use --device cpu'
    assert 'Traceback' not in printed.out + printed.err
    assert not Path(bad['work'] + '_cuda').exists()


@pytest.mark.parametrize('argv', [
    lambda f: ['tools/predict.py', f['config'], f['crafted'], '--data-root', f['data'], '--out', f['out']],
    lambda f: ['tools/train.py', f['config'], '--work-dir', f['work'] + '_sub', '--data-root', f['data'], '--resume',
               f['crafted']],
], ids=['predict', 'train --resume'])
def test_crafted_checkpoint_does_not_run_in_a_real_process(argv, bad):
    env = {k: v for k, v in os.environ.items() if k != TRUST_ENV}
    proc = subprocess.run([sys.executable, *argv(bad)], cwd=REPO, env={**env, 'PYTHONPATH': str(REPO)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert not Path(bad['marker']).exists(), 'the payload ran'
    errors = [ln for ln in proc.stderr.splitlines() if 'refused' in ln]
    assert len(errors) == 1 and bad['crafted'] in errors[0] and '--trust-checkpoint' in errors[0], proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr


def test_trust_checkpoint_loads_an_ordinary_full_pickle(bad, tmp_path):
    """The explicit opt-in: a checkpoint holding a type outside mmengine's allow-list loads with the flag."""
    from mmcell.apis import init_cell_model

    ckpt = torch.load(bad['ckpt'], weights_only=False)
    foreign = tmp_path / 'foreign.pth'
    torch.save(dict(ckpt, meta=dict(ckpt['meta'], note=Path('made/by/another/toolbox'))), foreign)
    with pytest.raises(ValueError, match='refused'):
        init_cell_model(bad['config'], str(foreign))
    model = init_cell_model(bad['config'], str(foreign), trust_checkpoint=True)
    key = 'roi_head.mask_head.conv_logits.weight'
    assert torch.equal(model.state_dict()[key], ckpt['state_dict'][key])
    out = tmp_path / 'trusted.zip'
    _main('predict')([bad['config'], str(foreign), '--data-root', bad['data'], '--out', str(out),
                      '--trust-checkpoint'])
    assert zipfile.is_zipfile(out)


# ------------------------------------------------------------------------- flags checked by the parser, no model
THRESHOLD_ROWS = [  # (script or command, argv, the flag): a threshold outside [0, 1] is a typo, refused at once
    ('segment', ['x.tif', '--config', 'c.py', '--checkpoint', 'w.pth', '--out', 'o', '--score-thr', '1.5'],
     '--score-thr'),
    ('segment-slide', ['s.svs', '--config', 'c.py', '--checkpoint', 'w.pth', '--out', 'o', '--score-thr', '50'],
     '--score-thr'),
    ('segment-slide', ['s.svs', '--config', 'c.py', '--checkpoint', 'w.pth', '--out', 'o', '--review-below', '-0.1'],
     '--review-below'),
    ('segment-slide', ['s.svs', '--config', 'c.py', '--checkpoint', 'w.pth', '--out', 'o', '--review-below', '0.6',
                       '--review-margin', '20'], '--review-margin'),
    ('tools/predict.py', ['c.py', 'w.pth', '--data-root', 'd', '--score-thr', '1.5'], '--score-thr'),
    ('tools/predict.py', ['c.py', 'w.pth', '--data-root', 'd', '--mask-thr', '2'], '--mask-thr'),
    ('tools/predict.py', ['c.py', 'w.pth', '--data-root', 'd', '--labels-score-thr', 'nan'], '--labels-score-thr'),
    ('tools/predict.py', ['c.py', 'w.pth', '--data-root', 'd', '--iou-thr', '55'], '--iou-thr'),
    ('tools/predict.py', ['c.py', 'w.pth', '--data-root', 'd', '--vote-thr', '1.01'], '--vote-thr'),
    ('tools/analysis_tools/visualize_predictions.py', ['c.py', 'w.pth', '--score-thr', '1.5'], '--score-thr'),
    ('tools/analysis_tools/class_confusion.py', ['--results', 'r.json', '--gt', 'g.json', '--score-thr', '1.5'],
     '--score-thr'),
    ('tools/analysis_tools/score_hist.py', ['--results', 'r.json', '--gt', 'g.json', '--thresholds', '0,0.5,5'],
     '--thresholds'),
    ('tools/analysis_tools/cross_validate.py', ['c.py', 'd', 'w', '--mask-thrs', '0.4', '40'], '--mask-thrs'),
]


def _entry(script: str):
    return _main(script) if script in ('segment', 'segment-slide') else load_script(script).main


@pytest.mark.parametrize('script, argv, flag', THRESHOLD_ROWS, ids=[f'{r[0]} {r[2]}' for r in THRESHOLD_ROWS])
def test_threshold_outside_zero_one_is_refused(script, argv, flag, capsys, tmp_path, monkeypatch):
    """``mmcell segment --score-thr 1.5`` used to run and write 0 cells: now one line naming the flag, exit 2."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        _entry(script)(argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2
    assert len(err.splitlines()) == 1 and f'argument {flag}' in err and 'outside [0, 1]' in err, err
    assert not list(tmp_path.iterdir())  # nothing written


def test_threshold_type():
    from mmcell.utils.errors import probabilities, probability

    assert probability('0') == 0.0 and probability('1') == 1.0 and probability('.5') == 0.5
    assert probabilities('0, 0.05,0.5') == [0.0, 0.05, 0.5]
    for bad in ('1.5', '-0.1', 'nan', 'inf'):
        with pytest.raises(argparse.ArgumentTypeError, match=r'outside \[0, 1\]'):
            probability(bad)
    with pytest.raises(argparse.ArgumentTypeError, match='not a number'):
        probability('half')


#: the tools that built a plain argparse parser or cut errors to their first line by hand (issue 25)
TOOL_SCRIPTS = ['tools/analysis_tools/plot_curves.py', 'tools/analysis_tools/eval_real.py',
                'tools/analysis_tools/compare_runs.py', 'tools/analysis_tools/compare_real_synthetic.py',
                'tools/analysis_tools/dataset_stats.py', 'tools/analysis_tools/browse_dataset.py',
                'tools/dataset_converters/make_synthetic_hw3.py', 'tools/dataset_converters/hw3_to_coco.py',
                'tools/dataset_converters/to_hw3.py', 'tools/dataset_converters/make_synthetic_slide.py']


@pytest.mark.parametrize('script', TOOL_SCRIPTS)
def test_tool_parser_errors_are_one_line(script, capsys):
    with pytest.raises(SystemExit) as exc:
        load_script(script).main(['x', 'y', 'z', '--no-such-flag'])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2
    assert len(err.splitlines()) == 1 and ': error: ' in err and err.endswith('(see --help)'), err  # no usage block


@pytest.mark.parametrize('script, argv', [
    ('tools/analysis_tools/dataset_stats.py', ['{missing}', '--out', '{tmp}/stats']),
    ('tools/analysis_tools/browse_dataset.py', ['{missing}', '--out', '{tmp}/overlays']),
    ('tools/analysis_tools/compare_real_synthetic.py', ['{missing}', '{missing}']),
    ('tools/dataset_converters/hw3_to_coco.py', ['{missing}', '--out', '{tmp}/coco.json']),
    ('tools/analysis_tools/plot_curves.py', ['{missing}']),
    ('tools/analysis_tools/compare_runs.py', ['{missing}']),
], ids=lambda v: Path(v).name if isinstance(v, str) else None)
def test_tool_bad_input_is_one_line_naming_it(script, argv, tmp_path, capsys):
    missing = tmp_path / 'no such root'
    with pytest.raises(SystemExit) as exc:
        load_script(script).main([a.format(missing=missing, tmp=tmp_path) for a in argv])
    msg = exc.value.code
    assert isinstance(msg, str) and '\n' not in msg and str(missing) in msg, msg
    assert 'Traceback' not in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written
