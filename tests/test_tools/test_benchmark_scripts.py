"""Every script in benchmarks/ answers ``--help`` the way a user runs it (``python benchmarks/NAME.py --help``).

A script whose top-level imports break (a moved module, a wrong path) exits non-zero here. Its description is the
first paragraph of its docstring: it says what is measured against what and where the figures go (RESULTS.md).
"""
from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

EXPECTED = {'inference', 'training_pipeline', 'parse_cache', 'coco_eval', 'pathology_metrics', 'slide',
            'monuseg_vs_peers', 'cellpose_train_predict'}
SCRIPTS = sorted((REPO / 'benchmarks').glob('*.py'))


def _squash(text: str) -> str:
    """Text without any whitespace: argparse rewraps the description (and may break lines at hyphens)."""
    return ''.join(text.split())


def test_benchmarks_are_all_there():
    assert EXPECTED <= {p.stem for p in SCRIPTS}


@pytest.mark.parametrize('script', SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_benchmark_help(script):
    doc = ast.get_docstring(ast.parse(script.read_text()))
    assert doc, f'{script.name}: no module docstring'
    description = doc.split('\n\n')[0]
    assert 'RESULTS.md' in description, f'{script.name}: the description does not say where the figures go'
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    proc = subprocess.run([sys.executable, str(script.relative_to(REPO)), '--help'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f'{script.name} --help exited {proc.returncode}:\n{proc.stderr[-3000:]}'
    assert proc.stdout.startswith('usage:'), proc.stdout[:500]
    assert _squash(description) in _squash(proc.stdout), f'{script.name}: description missing from --help'


@pytest.mark.parametrize('script', SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_benchmark_name_shadows_no_module(script):
    """``python benchmarks/NAME.py`` puts benchmarks/ first on sys.path, so a script named like an importable module
    (stdlib or installed: ``inference``, ``slide``, ...) would replace it for every import in that process."""
    assert importlib.util.find_spec(script.stem) is None, f'benchmarks/{script.name} shadows a module of that name'
