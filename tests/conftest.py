"""Fixtures shared by the whole suite: the synthetic data sets and ONE trained model, each made once.

The suite runs on 2 cores in two pytest-xdist workers (``make test``: ``pytest -n 2``), so a session fixture would
run once per worker. The costly ones are therefore built by :func:`built_once`: the first worker builds, the other
waits on a file lock and reuses the result. The trained model is also kept across runs under pytest's cache
(``.pytest_cache/d/mmcell-fixtures/``), keyed by a hash of everything that could change it (mmcell's code, the
configs, ``tools/train.py``, this recipe and the installed versions): a dev loop that changed nothing it depends on
does not train again, a change to any of them does, and a fresh clone (CI) always trains.
``pytest -p no:cacheprovider`` or ``MMCELL_TEST_CACHE=0`` keeps everything inside the run's tmp dir.

Markers (registered in pyproject.toml): ``slow`` marks what ``make test-fast`` (``pytest -m "not slow"``) skips: tests
measured at >= 3 s on 2 cores (``pytest --durations``; RESULTS.md "Test suite") and every test that needs the trained
model (its training is the suite's largest single cost), which this file marks by itself.
"""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
QUICKSTART_GLOB = str(REPO / 'configs' / 'quickstart' / '*.py')
# The one trained model: the quickstart, 8 short epochs on 32 synthetic images (~1 min on 2 cores). Its weakest
# users set the length: the slide tests need a model whose AP50 on the test slide is ~0.4, so that seams and AP
# comparisons mean something (3 epochs on 6 images scored every nucleus below 0.2).
TRAINED_EPOCHS = 8
TRAIN_SET = dict(num_train=32, num_test=0, seed=0, min_size=128, max_size=320)
TRAINED_FIXTURES = ('trained_quickstart',)  # fixtures whose users are marked slow
_CHILDREN: list = []  # tools running now (the background training among them), killed if the run ends early
# One torch thread per process: the tools' data-loading worker or the other xdist worker takes the other core.
os.environ.setdefault('OMP_NUM_THREADS', '1')


def _needs_model(item) -> bool:
    return bool(set(TRAINED_FIXTURES) & set(getattr(item, 'fixturenames', ())))


def pytest_itemcollected(item) -> None:
    """Every test that needs the trained model is ``slow``: on a fresh checkout it waits for the training (marked
    here, before ``-m`` deselects)."""
    if _needs_model(item):
        item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)  # after ``-m`` / ``-k`` deselected, before xdist sends the order to its scheduler
def pytest_collection_modifyitems(config, items) -> None:
    """The modules that need the trained model run last, while it trains in the background from the start (in each
    xdist worker: the first to take the lock trains, the other finds it done), so no core waits for it."""
    modules = {item.module.__name__ for item in items if _needs_model(item)}
    items.sort(key=lambda item: item.module.__name__ in modules)  # stable: a module stays in one piece
    if modules and not config.option.collectonly and importlib.util.find_spec('mmcv.ops') is not None:
        root, name, build = _trained_model_plan(config)
        threading.Thread(target=_build_quietly, args=(root, name, build), daemon=True, name='trained-model').start()


def pytest_unconfigure(config) -> None:
    """A run that ends early (-x, Ctrl-C) leaves no training behind."""
    for proc in list(_CHILDREN):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def quickstart_config() -> str:
    found = sorted(glob.glob(QUICKSTART_GLOB))
    if not found:
        pytest.skip('no configs/quickstart/*.py yet')
    return found[0]


def run_tool(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a repo tool with this interpreter; fail the test with the tool's output tail on error."""
    full_env = {**os.environ, 'PYTHONPATH': str(REPO), **(env or {})}
    with subprocess.Popen([*args], cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as child:
        _CHILDREN.append(child)
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            stdout, stderr = child.communicate()
            pytest.fail(f'{" ".join(args)} ran past {timeout} s:\n{(stdout + stderr)[-4000:]}')
        finally:
            _CHILDREN.remove(child)
    proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(args)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}')
    return proc


def run_in_child(module: str, function: str, *args: str, timeout: float = 900) -> dict:
    """``module.function(*args)`` (string arguments) in a fresh Python process, through :func:`run_tool`; returns the
    JSON of its result (the last line it prints). For work kept out of the suite's process (OpenVINO / NNCF int8)."""
    code = (f'import json, sys; from {module} import {function}; '
            f'print(json.dumps({function}(*sys.argv[1:])))')
    proc = run_tool(sys.executable, '-c', code, *args, timeout=timeout)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_script(relpath: str):
    """Import a repo script that is not a package module (``tools/...``, ``benchmarks/...``) by its path."""
    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_names(root) -> list:
    """The sample folders of an HW3 data root's ``train/``, sorted."""
    return sorted(p.name for p in (Path(root) / 'train').iterdir() if p.is_dir())


def train_sample_names(cfg) -> list:
    """The sample names a config's training set yields, one per item (repeats included), the dataset built for
    real."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    from mmcell.utils.setup_env import register_all_modules

    register_all_modules()
    init_default_scope('mmdet')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return [Path(dataset.get_data_info(i)['img_path']).parent.name for i in range(len(dataset))]


def free_port() -> int:
    """A TCP port nobody listens on now, for a multi-process test's rendezvous (never a fixed number)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------- built once
def _run_dir(tmp_path_factory) -> Path:
    """A folder all xdist workers of this run share (a worker's basetemp is ``<run>/popen-gwN``)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


def _cache_dir(config) -> Path | None:
    if os.environ.get('MMCELL_TEST_CACHE', '1') == '0' or not hasattr(config, 'cache'):
        return None
    return Path(config.cache.mkdir('mmcell-fixtures'))


def built_once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """``root/name``, built by ``build(folder)`` unless a finished one is there; safe across processes.

    The build writes into a scratch folder renamed into place when it returns, so a build that failed or was killed
    never looks finished; the next caller builds again.
    """
    root.mkdir(parents=True, exist_ok=True)
    out = root / name
    with FileLock(str(root / f'{name}.lock')):
        if not out.is_dir():
            scratch = root / f'{name}.partial'
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            build(scratch)
            scratch.rename(out)
    return out


def _prune(root: Path, prefix: str, keep: str) -> None:
    """Remove ``root/prefix*`` but ``keep`` (and its lock): models of older code (~90 MB each) are not used again."""
    for old in root.glob(f'{prefix}*'):
        if old.name.startswith(keep):
            continue
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _code_key(*extra: object) -> str:
    """A hash of mmcell's code, the configs, tools/train.py, ``extra`` and the installed versions."""
    import mmcv
    import mmdet
    import mmengine
    import numpy
    import torch

    digest = hashlib.sha256()
    files = sorted([*REPO.glob('mmcell/**/*.py'), *REPO.glob('configs/**/*.py'), REPO / 'tools' / 'train.py'])
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    versions = [m.__version__ for m in (torch, mmcv, mmdet, mmengine, numpy)]
    digest.update(repr((versions, sys.version_info[:2], extra)).encode())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- data
@pytest.fixture(scope='session')
def synthetic_hw3(tmp_path_factory) -> Path:
    """A small synthetic data set in the exact contest layout (6 train, 3 test images, 96-256 px)."""
    from mmcell.synthetic.hw3 import make_synthetic_hw3

    def build(folder: Path) -> None:
        make_synthetic_hw3(folder / 'hw3-data-release', num_train=6, num_test=3, seed=0, min_size=96, max_size=256)

    return built_once(_run_dir(tmp_path_factory), 'synthetic', build) / 'hw3-data-release'


@dataclass
class TrainedRun:
    config: str       # the resolved config the runner dumped, its data root pointed at ``data_root``
    checkpoint: str   # epoch_<TRAINED_EPOCHS>.pth (optimizer state and message hub included)
    work_dir: str     # the training's work dir (and the dumped config): read-only, copy it to resume
    data_root: str    # the small ``synthetic_hw3`` set the tests evaluate and predict on (not trained on)
    train_root: str   # the 32-image set it was trained on (resume continues on it)


def _trained_model_plan(config) -> tuple:
    """Where the trained model lives (``root/name``) and how to build it into a folder."""
    quickstart = quickstart_config()
    name = f'trained-{_code_key(quickstart, TRAINED_EPOCHS, TRAIN_SET)}'
    cache = _cache_dir(config)

    def build(folder: Path) -> None:
        from mmcell.synthetic.hw3 import make_synthetic_hw3

        make_synthetic_hw3(folder / 'data', **TRAIN_SET)
        run_tool(sys.executable, 'tools/train.py', quickstart, '--work-dir', str(folder / 'work'), '--data-root',
                 str(folder / 'data'), '--cfg-options', f'train_cfg.max_epochs={TRAINED_EPOCHS}',
                 f'train_cfg.val_interval={TRAINED_EPOCHS}', f'default_hooks.checkpoint.interval={TRAINED_EPOCHS}',
                 'randomness.seed=0', timeout=1200)
        # the dumped config and mmengine's last_checkpoint name the scratch folder: point them at the final one
        for written in [*(folder / 'work').glob('*.py'), folder / 'work' / 'last_checkpoint']:
            written.write_text(written.read_text().replace(str(folder), str(folder.with_name(name))))
        if cache is not None:
            _prune(cache, 'trained-', keep=name)

    # pytest's own tmp_path_factory (the public fixture is not reachable from a hook)
    return (cache if cache is not None else _run_dir(config._tmp_path_factory)), name, build


def _build_quietly(root: Path, name: str, build: Callable[[Path], None]) -> None:
    """The background build: a failure is left to the fixture, which builds again and reports it."""
    try:
        built_once(root, name, build)
    except BaseException:  # noqa: B036  (pytest.fail raises a BaseException)
        pass


@pytest.fixture(scope='session')
def trained_quickstart(request, synthetic_hw3, tmp_path_factory) -> TrainedRun:
    """THE suite's trained model: the quickstart config, ``TRAINED_EPOCHS`` epochs on ``TRAIN_SET`` via
    tools/train.py, seeded (``randomness.seed=0``), so every run tests the same model. Built once per run (shared by
    the xdist workers) and, while nothing it depends on changes, once across runs (pytest's cache)."""
    pytest.importorskip('mmcv.ops')
    root = built_once(*_trained_model_plan(request.config))
    work_dir = root / 'work'
    dumped = sorted(glob.glob(osp.join(work_dir, '*.py')))
    checkpoint = work_dir / f'epoch_{TRAINED_EPOCHS}.pth'
    assert dumped and checkpoint.is_file(), f'no config or checkpoint in {work_dir}: {os.listdir(work_dir)}'
    dumped = Path(dumped[0])

    def point_at_test_set(folder: Path) -> None:  # tests that run the config as it is evaluate the small set
        (folder / dumped.name).write_text(dumped.read_text().replace(str(root / 'data'), str(synthetic_hw3)))

    config = built_once(_run_dir(tmp_path_factory), 'trained-config', point_at_test_set) / dumped.name
    return TrainedRun(config=str(config), checkpoint=str(checkpoint), work_dir=str(work_dir),
                      data_root=str(synthetic_hw3), train_root=str(root / 'data'))
