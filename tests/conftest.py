"""Session fixtures shared by the whole suite: one small synthetic HW3 set, one briefly trained model.

Both are made once per pytest session in a tmp dir (never in the repo), so every test that needs data or a real
checkpoint pays for them once.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QUICKSTART_GLOB = str(REPO / 'configs' / 'quickstart' / '*.py')
TRAINED_EPOCHS = 3  # of 3 iterations each: weak, but a model that predicts nuclei
# One torch thread per process: the tools' data-loading worker takes the other core (faster on 2 cores).
os.environ.setdefault('OMP_NUM_THREADS', '1')


def quickstart_config() -> str:
    found = sorted(glob.glob(QUICKSTART_GLOB))
    if not found:
        pytest.skip('no configs/quickstart/*.py yet')
    return found[0]


def run_tool(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a repo tool with this interpreter; fail the test with the tool's output tail on error."""
    full_env = {**os.environ, 'PYTHONPATH': str(REPO), **(env or {})}
    proc = subprocess.run([*args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(args)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}')
    return proc


def load_script(relpath: str):
    """Import a repo script that is not a package module (``tools/...``, ``benchmarks/...``) by its path."""
    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def synthetic_hw3(tmp_path_factory) -> Path:
    """A small synthetic data set in the exact contest layout (6 train, 3 test images, 96-256 px)."""
    from mmcell.synthetic.hw3 import make_synthetic_hw3

    root = tmp_path_factory.mktemp('synthetic') / 'hw3-data-release'
    return Path(make_synthetic_hw3(root, num_train=6, num_test=3, seed=0, min_size=96, max_size=256))


@dataclass
class TrainedRun:
    config: str
    checkpoint: str
    work_dir: str
    data_root: str


@pytest.fixture(scope='session')
def trained_quickstart(synthetic_hw3, tmp_path_factory) -> TrainedRun:
    """The CPU quickstart config trained for ``TRAINED_EPOCHS`` short epochs on ``synthetic_hw3`` via tools/train.py.

    Seeded (``randomness.seed``), so every run of the suite tests the same weakly trained model.
    """
    pytest.importorskip('mmcv.ops')
    work_dir = tmp_path_factory.mktemp('quickstart')
    run_tool(sys.executable, 'tools/train.py', quickstart_config(), '--work-dir', str(work_dir),
             '--data-root', str(synthetic_hw3), '--cfg-options', f'train_cfg.max_epochs={TRAINED_EPOCHS}',
             f'train_cfg.val_interval={TRAINED_EPOCHS}', 'randomness.seed=0')
    config = sorted(glob.glob(osp.join(work_dir, '*.py')))[0]  # the runner dumps the resolved config here
    checkpoint = osp.join(work_dir, f'epoch_{TRAINED_EPOCHS}.pth')
    assert osp.isfile(checkpoint), f'no checkpoint in {work_dir}: {os.listdir(work_dir)}'
    return TrainedRun(config=config, checkpoint=checkpoint, work_dir=str(work_dir), data_root=str(synthetic_hw3))
