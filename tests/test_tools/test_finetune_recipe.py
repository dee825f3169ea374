"""``tools/misc/finetune.sh`` up to training (config validity only): a QuPath export is converted, the child config
gets the export's classes, the data and ``load_from``, and builds its model and data sets."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from mmcell.datasets.image_io import write_image_tif
from mmcell.structures.cells import cell_polygon
from mmcell.synthetic.hw3 import synthesize_image

REPO = Path(__file__).resolve().parents[2]


def _qupath_export(src: Path) -> None:
    rng = np.random.default_rng(0)
    src.mkdir(parents=True)
    for stem in ('s1', 's2'):
        rgb, class_maps = synthesize_image(rng, 96, 96, keep_border=True, density=2.0)
        write_image_tif(src / f'{stem}.tif', rgb)
        features = []
        for k, cmap in class_maps.items():
            for v in np.unique(cmap[cmap > 0]):
                ys, xs = np.nonzero(cmap == v)
                crop = cmap[ys.min():ys.max() + 1, xs.min():xs.max() + 1] == v
                features.append({'type': 'Feature', 'geometry': cell_polygon(crop, int(xs.min()), int(ys.min())),
                                 'properties': {'objectType': 'annotation',
                                                'classification': {'name': 'Tumor' if k == 1 else 'Immune cells'}}})
        (src / f'{stem}.geojson').write_text(json.dumps({'type': 'FeatureCollection', 'features': features}))


@pytest.mark.slow
def test_finetune_writes_a_valid_child_config(tmp_path):
    pytest.importorskip('mmcv.ops')
    _qupath_export(tmp_path / 'src')
    ckpt = tmp_path / 'trained.pth'
    ckpt.write_bytes(b'weights')  # only its path is used before training
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'PY': sys.executable, 'FINETUNE_DRY_RUN': '1'}
    proc = subprocess.run(['bash', 'tools/misc/finetune.sh', str(tmp_path / 'src'), str(tmp_path / 'work'), '--from',
                           str(ckpt)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = Config.fromfile(str(tmp_path / 'work' / 'finetune.py'))
    classes = tuple(json.loads((tmp_path / 'work' / 'data' / 'classes.json').read_text())['classes'])
    assert set(classes) == {'Tumor', 'Immune cells'}
    assert cfg.load_from == str(ckpt) and cfg.train_cfg.max_iters == 300
    assert cfg.model.roi_head.bbox_head.num_classes == cfg.model.roi_head.mask_head.num_classes == 2
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert tuple(cfg[split].dataset.metainfo.classes) == classes and not cfg[split].dataset.class_agnostic
    from mmcell.utils import register_all_modules

    register_all_modules()
    from mmdet.registry import DATASETS, MODELS

    MODELS.build(cfg.model)
    train, val = (DATASETS.build(cfg[s].dataset) for s in ('train_dataloader', 'val_dataloader'))
    assert len(train) + len(val) == 2 and len(val) == 1  # the two images: one held out
    assert 'config:' in proc.stdout
