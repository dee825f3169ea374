"""tools/train.py --resume on torch >= 2.6, and a 2-process CPU (torchrun + gloo) run that trains and evaluates."""
import os.path as osp
import shutil
import sys

import pytest
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

from tests.conftest import TRAINED_EPOCHS, free_port, quickstart_config, run_tool

pytest.importorskip('mmcv.ops')


def _load(path: str) -> dict:
    return CheckpointLoader.load_checkpoint(path, map_location='cpu')


def test_resume_continues_iteration_and_optimizer_state(trained_quickstart, tmp_path):
    work_dir = tmp_path / 'resumed'
    shutil.copytree(trained_quickstart.work_dir, work_dir)
    first = _load(osp.join(work_dir, f'epoch_{TRAINED_EPOCHS}.pth'))
    done_iters = first['meta']['iter']
    assert done_iters > 0 and done_iters % TRAINED_EPOCHS == 0 and 'optimizer' in first
    # the extra epoch sees 4 of the training images (2 iterations of the quickstart's batch of 2): a short test
    batch_size = Config.fromfile(quickstart_config()).train_dataloader.batch_size
    iters_per_epoch = -(-4 // batch_size)

    proc = run_tool(sys.executable, 'tools/train.py', quickstart_config(), '--work-dir', str(work_dir),
                    '--data-root', trained_quickstart.train_root, '--resume',
                    '--cfg-options', f'train_cfg.max_epochs={TRAINED_EPOCHS + 1}', 'train_cfg.val_interval=10',
                    'train_dataloader.dataset.indices=4')
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


@pytest.mark.slow
def test_two_process_cpu_training_completes_and_evaluates(synthetic_hw3, tmp_path):
    work_dir = tmp_path / 'dist'
    proc = run_tool('bash', 'tools/dist_train.sh', quickstart_config(), '2', '--work-dir', str(work_dir),
                    '--data-root', str(synthetic_hw3),
                    '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                    env={'PORT': str(free_port()), 'OMP_NUM_THREADS': '1'})
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log, log[-3000:]  # mmengine's env table
    assert 'coco/segm_mAP_50' in log, log[-3000:]
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
