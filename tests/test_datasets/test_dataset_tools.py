"""The dataset tools run end to end on tiny data: make_synthetic_hw3.py, hw3_to_coco.py (+ a bad root)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, run_tool

from mmcell.datasets.hw3_format import list_train_samples


@pytest.mark.slow
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


@pytest.mark.slow
def test_hw3_to_coco_bad_root_one_line(tmp_path):
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    proc = subprocess.run([sys.executable, 'tools/dataset_converters/hw3_to_coco.py', str(tmp_path), '--out',
                           str(tmp_path / 'x.json')], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f'{tmp_path / "train"}: training folder not found ' \
        '(expected DATA_ROOT/train/<id>/image.tif)'
    assert not (tmp_path / 'x.json').exists()


@pytest.mark.slow
def test_browse_and_stats_tools(synthetic_hw3, tmp_path):
    import cv2

    from mmcell.datasets.hw3_annotations import load_train_annotations
    from mmcell.datasets.hw3_dataset import CELL_METAINFO

    out = tmp_path / 'browse'
    proc = run_tool(sys.executable, 'tools/analysis_tools/browse_dataset.py', str(synthetic_hw3), '--out', str(out),
                    '--max-images', '2', '--min-side', '200')
    samples = load_train_annotations(synthetic_hw3, cache_file=None, progress=False)
    assert f'{out}: 2 overlays' in proc.stdout
    for s in samples[:2]:
        png = cv2.imread(str(out / f'{s["name"]}.png'))[..., ::-1]
        scale = min(4, max(1, -(-200 // min(s['height'], s['width']))))
        assert png.shape == (s['height'] * scale, 2 * s['width'] * scale + 8, 3)
        overlay = png[:, s['width'] * scale + 8:]
        for k in {i['class_id'] for i in s['instances']}:  # every class present is drawn in its colour
            assert (overlay == CELL_METAINFO['palette'][k - 1]).all(axis=2).sum() > 10
    proc = run_tool(sys.executable, 'tools/analysis_tools/dataset_stats.py', str(synthetic_hw3), '--out',
                    str(tmp_path / 'stats'))
    total = sum(len(s['instances']) for s in samples)
    assert f'images: {len(samples)}' in proc.stdout
    assert 'touching the image border: ' in proc.stdout and f'/{total} (' in proc.stdout
    assert (tmp_path / 'stats' / 'dataset_stats.png').stat().st_size > 10_000


def test_contours_separate_touching_cells():
    import numpy as np
    from hw3_builders import touching_maps

    from mmcell.datasets.hw3_format import class_map_instances
    from mmcell.structures.label_image import instance_label_map
    from mmcell.visualization.plots import contour_pixels

    cmap = touching_maps()[2]
    instances = [i._asdict() | dict(mask=i.rle) for i in class_map_instances(cmap, 2)]
    labels = instance_label_map(instances, *cmap.shape)
    assert np.array_equal(labels > 0, cmap > 0) and len(np.unique(labels)) == 3
    edge = contour_pixels(labels)
    assert edge[12:20, 15].all() and edge[12:20, 16].all()  # the shared edge is drawn on both sides
    assert not edge[14:18, 12:14].any()  # interiors are not
