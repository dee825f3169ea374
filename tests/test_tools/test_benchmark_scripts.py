"""Every script in benchmarks/ answers ``--help`` the way a user runs it (``python benchmarks/NAME.py --help``).

A script whose top-level imports break (a moved module, a wrong path) exits non-zero here. Its description is the
first paragraph of its docstring: it says what is measured against what and where the figures go (RESULTS.md).
All scripts run in ONE fresh interpreter (``runpy`` as ``__main__``, ``sys.path[0]`` = benchmarks/ as ``python
benchmarks/NAME.py`` sets it), so torch and mmdet are imported once rather than once per script.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

EXPECTED = {'inference', 'training_pipeline', 'parse_cache', 'coco_eval', 'pathology_metrics', 'slide',
            'monuseg_vs_peers', 'cellpose_train_predict'}
SCRIPTS = sorted((REPO / 'benchmarks').glob('*.py'))
# Runs each script as `python benchmarks/NAME.py --help` would, in one process; prints {name: [exit code, out, err]}.
HELP_DRIVER = """
import contextlib, io, json, runpy, sys, traceback
results = {}
for path in sys.argv[1:]:
    out, err = io.StringIO(), io.StringIO()
    sys.argv, sys.path[0] = [path, '--help'], path.rsplit('/', 1)[0]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(path, run_name='__main__')
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (exc.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
    results[path] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""


def _squash(text: str) -> str:
    """Text without any whitespace: argparse rewraps the description (and may break lines at hyphens)."""
    return ''.join(text.split())


def test_benchmarks_are_all_there():
    assert EXPECTED <= {p.stem for p in SCRIPTS}


@pytest.fixture(scope='module')
def helps() -> dict:
    """``--help`` of every script: {path relative to the repo: (exit code, stdout, stderr)}."""
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    paths = [str(p.relative_to(REPO)) for p in SCRIPTS]
    proc = subprocess.run([sys.executable, '-c', HELP_DRIVER, *paths], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize('script', SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_benchmark_help(script, helps):
    doc = ast.get_docstring(ast.parse(script.read_text()))
    assert doc, f'{script.name}: no module docstring'
    description = doc.split('\n\n')[0]
    assert 'RESULTS.md' in description, f'{script.name}: the description does not say where the figures go'
    returncode, stdout, stderr = helps[str(script.relative_to(REPO))]
    assert returncode == 0, f'{script.name} --help exited {returncode}:\n{stderr[-3000:]}'
    assert stdout.startswith('usage:'), stdout[:500]
    assert _squash(description) in _squash(stdout), f'{script.name}: description missing from --help'


@pytest.mark.parametrize('script', SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_benchmark_name_shadows_no_module(script):
    """``python benchmarks/NAME.py`` puts benchmarks/ first on sys.path, so a script named like an importable module
    (stdlib or installed: ``inference``, ``slide``, ...) would replace it for every import in that process."""
    assert importlib.util.find_spec(script.stem) is None, f'benchmarks/{script.name} shadows a module of that name'
