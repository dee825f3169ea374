"""tools/misc/monuseg_cpu.sh end to end on a MoNuSeg-layout source drawn by the synthetic generator.

The 13 synthetic tiles carry the real MoNuSeg stems, so the recipe's fixed 10/3 split applies unchanged; the
script converts them (ImageScope XML polygons), trains a few iterations and prints the config and checkpoint.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from mmcell.datasets.image_io import write_image_tif
from mmcell.synthetic.hw3 import synthesize_image
from tests.conftest import REPO, run_tool

RECIPE = REPO / 'configs' / 'monuseg' / 'mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py'


def write_monuseg_like(src: Path, names: list, size: int = 200) -> int:
    """``Tissue Images/<stem>.tif`` + ``Annotations/<stem>.xml`` (one Region per nucleus, its outer contour)."""
    total = 0
    for k, stem in enumerate(names):
        rgb, class_maps = synthesize_image(np.random.default_rng(k), size, size, density=2.0)
        ids = sum(class_maps.values())
        regions = []
        for v in np.unique(ids[ids > 0]):
            contours, _ = cv2.findContours((ids == v).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            poly = max(contours, key=len)[:, 0, :]
            if len(poly) >= 3:
                # vertices on pixel borders (x + 0.5): the converter's pixel-centre rule keeps the boundary pixels
                verts = ''.join(f'<Vertex X="{x + 0.5}" Y="{y + 0.5}"/>' for x, y in poly)
                regions.append(f'<Region Id="{len(regions) + 1}"><Vertices>{verts}</Vertices></Region>')
        total += len(regions)
        (src / 'Annotations').mkdir(parents=True, exist_ok=True)
        (src / 'Annotations' / f'{stem}.xml').write_text(
            '<Annotations MicronsPerPixel="0.252700"><Annotation Id="1"><Regions>' + ''.join(regions)
            + '</Regions></Annotation></Annotations>')
        write_image_tif(src / 'Tissue Images' / f'{stem}.tif', rgb)
    return total


@pytest.mark.slow
def test_monuseg_cpu_script(tmp_path):
    pytest.importorskip('mmcv.ops')
    val = list(Config.fromfile(str(RECIPE)).val_dataloader.dataset.val_names)
    names = sorted(val + [f'TCGA-SYNTH-{k:02d}' for k in range(10)])
    assert write_monuseg_like(tmp_path / 'src', names) > 13 * 5
    work = tmp_path / 'work'
    proc = run_tool('bash', 'tools/misc/monuseg_cpu.sh', str(tmp_path / 'src'), str(work),
                    '--cfg-options', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                    'default_hooks.checkpoint.interval=4', 'train_dataloader.num_workers=0',
                    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
                    'train_dataloader.persistent_workers=False', 'randomness.seed=0',
                    'model.test_cfg.rcnn.max_per_img=100',  # a 4-iteration model: 100 detections keep it quick
                    env={'PY': sys.executable})
    out = proc.stdout
    assert sorted(p.name for p in (work / 'data' / 'train').iterdir()) == names
    # trained on the 10, validated on the 3 fixed tiles, one class
    assert re.search(r'segm AP50 \(maxDets 1000\)\s+[0-9.]+', out), out[-2000:]
    # the script's closing lines (the converter prints a 'config:' hint of its own earlier)
    config = Path(re.findall(r'^config:\s+(\S+)', out, re.M)[-1])
    best = Path(re.findall(r'^best checkpoint:\s+(\S+)', out, re.M)[-1])
    assert config.is_file() and best.is_file() and best.suffix == '.pth'
    cfg = Config.fromfile(str(config))
    assert cfg.model.roi_head.mask_head.num_classes == 1 and cfg.train_cfg.max_iters == 4
    log = (work / 'train.log').read_text()
    assert 'coco/segm_mAP_50_md1000 at 4 iter is saved' in log  # validated and kept by the dense-tile AP50
