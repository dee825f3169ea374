"""The dataset tools run end to end on tiny data: make_synthetic_hw3.py, hw3_to_coco.py (+ a bad root)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO, run_tool

from mmcell.datasets.hw3_format import list_train_samples


def test_make_synthetic_then_convert(tmp_path):
    root = tmp_path / 'data'
    proc = run_tool(sys.executable, 'tools/dataset_converters/make_synthetic_hw3.py', str(root), '--num-train', '3',
                    '--num-test', '2', '--seed', '5', '--min-size', '64', '--max-size', '128')
    assert f'{root}: 3 train folders, 2 test images' in proc.stdout
    assert len(list_train_samples(root)) == 3
    assert len(json.loads((root / 'test_image_name_to_ids.json').read_text())) == 2
    out = tmp_path / 'coco.json'
    proc = run_tool(sys.executable, 'tools/dataset_converters/hw3_to_coco.py', str(root), '--out', str(out),
                    '--val-ratio', '0.34', '--seed', '1', '--no-cache')
    train, val = (json.loads((tmp_path / f'coco_{s}.json').read_text()) for s in ('train', 'val'))
    assert (len(train['images']), len(val['images'])) == (2, 1)
    assert f'coco_val.json: 1 images, {len(val["annotations"])} instances' in proc.stdout
    assert not out.exists() and not (root / '.mmcell_cache').exists()


def test_hw3_to_coco_bad_root_one_line(tmp_path):
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    proc = subprocess.run([sys.executable, 'tools/dataset_converters/hw3_to_coco.py', str(tmp_path), '--out',
                           str(tmp_path / 'x.json')], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f'{tmp_path / "train"}: training folder not found ' \
        '(expected DATA_ROOT/train/<id>/image.tif)'
    assert not (tmp_path / 'x.json').exists()
