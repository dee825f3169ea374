"""tools/train.py --resume on torch >= 2.6, and a 2-process CPU (torchrun + gloo) run that trains and evaluates."""
import os.path as osp
import shutil
import socket
import sys

import pytest
from mmengine.runner.checkpoint import CheckpointLoader

from tests.conftest import TRAINED_EPOCHS, quickstart_config, run_tool

pytest.importorskip('mmcv.ops')


def _load(path: str) -> dict:
    return CheckpointLoader.load_checkpoint(path, map_location='cpu')


def test_resume_continues_iteration_and_optimizer_state(trained_quickstart, tmp_path):
    work_dir = tmp_path / 'resumed'
    shutil.copytree(trained_quickstart.work_dir, work_dir)
    first = _load(osp.join(work_dir, f'epoch_{TRAINED_EPOCHS}.pth'))
    done_iters = first['meta']['iter']
    assert done_iters > 0 and 'optimizer' in first
    iters_per_epoch = done_iters // TRAINED_EPOCHS

    proc = run_tool(sys.executable, 'tools/train.py', quickstart_config(), '--work-dir', str(work_dir),
                    '--data-root', trained_quickstart.data_root, '--resume',
                    '--cfg-options', f'train_cfg.max_epochs={TRAINED_EPOCHS + 1}', 'train_cfg.val_interval=10')
    log = proc.stdout + proc.stderr
    assert f'resumed epoch: {TRAINED_EPOCHS}, iter: {done_iters}' in log, log[-3000:]
    second = _load(osp.join(work_dir, f'epoch_{TRAINED_EPOCHS + 1}.pth'))
    assert second['meta']['epoch'] == TRAINED_EPOCHS + 1
    assert second['meta']['iter'] == done_iters + iters_per_epoch
    # the optimizer state came back: per-parameter step counters (Adam-family) / momentum buffers continue
    states = list(second['optimizer']['state'].values())
    assert states, 'optimizer state is empty after resume'
    if 'step' in states[0]:
        assert int(states[0]['step']) == done_iters + iters_per_epoch
    # the message hub (the part torch >= 2.6 refused to unpickle) carried the loss history over
    assert 'train/loss' in second['message_hub']['log_scalars']


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_process_cpu_training_completes_and_evaluates(synthetic_hw3, tmp_path):
    work_dir = tmp_path / 'dist'
    proc = run_tool('bash', 'tools/dist_train.sh', quickstart_config(), '2', '--work-dir', str(work_dir),
                    '--data-root', str(synthetic_hw3),
                    '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                    env={'PORT': str(_free_port()), 'OMP_NUM_THREADS': '1'})
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log, log[-3000:]  # mmengine's env table
    assert 'coco/segm_mAP_50' in log, log[-3000:]
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
