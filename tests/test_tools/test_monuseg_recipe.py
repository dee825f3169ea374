"""tools/misc/monuseg_cpu.sh end to end on a MoNuSeg-layout source drawn by the synthetic generator.

The 13 synthetic tiles carry the real MoNuSeg stems, so the recipe's fixed 10/3 split applies unchanged; the
script converts them (ImageScope XML polygons), trains a few iterations and prints the config and checkpoint.
Its MONUSEG_SYNTHETIC step (``recipe_synthetic N`` of recipe_lib.sh) is tested on its own, without training.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from mmcell.datasets.image_io import read_tiff, write_image_tif
from mmcell.synthetic.hw3 import make_synthetic_hw3, synthesize_image
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
                    env={'PY': sys.executable, 'MONUSEG_SYNTHETIC': '3'})  # the default (432) path, 3 images
    out = proc.stdout
    assert sorted(p.name for p in (work / 'data' / 'train').iterdir()) == names
    assert len(list((work / 'synthetic-3' / 'train').iterdir())) == 3
    # trained on the 10, validated on the 3 fixed tiles, one class
    assert re.search(r'segm AP50 \(maxDets 1000\)\s+[0-9.]+', out), out[-2000:]
    # the script's closing lines (the converter prints a 'config:' hint of its own earlier)
    config = Path(re.findall(r'^config:\s+(\S+)', out, re.M)[-1])
    best = Path(re.findall(r'^best checkpoint:\s+(\S+)', out, re.M)[-1])
    assert config.is_file() and best.is_file() and best.suffix == '.pth'
    cfg = Config.fromfile(str(config))
    assert cfg.model.roi_head.mask_head.num_classes == 1 and cfg.train_cfg.max_iters == 4
    # trained on the synthetic images too (--extra-train), the 3 validation tiles still apart
    assert cfg.train_dataloader.dataset.type == 'ConcatDataset'
    own, synthetic = (d.get('dataset', d) for d in cfg.train_dataloader.dataset.datasets)
    assert own.split == 'train' and sorted(own.val_names) == sorted(val)
    assert Path(synthetic.data_root).resolve() == (work / 'synthetic-3').resolve() and synthetic.split == 'all'
    log = (work / 'train.log').read_text()
    assert 'coco/segm_mAP_50_md1000 at 4 iter is saved' in log  # validated and kept by the dense-tile AP50


def _recipe_synthetic(work: Path, n: int) -> str:
    """``recipe_synthetic N`` of tools/misc/recipe_lib.sh (the step monuseg_cpu.sh runs for MONUSEG_SYNTHETIC=N)."""
    script = (f'source tools/misc/recipe_lib.sh; RECIPE=monuseg; START=$(date +%s); PY={sys.executable}; '
              f'WORK_DIR={work}; recipe_synthetic {n}; echo "SYNTHETIC=$SYNTHETIC"')
    return run_tool('bash', '-c', script).stdout


def test_synthetic_extra_data_drawn_once_kept_and_redrawn_when_damaged(tmp_path):
    """MONUSEG_SYNTHETIC=N: N images drawn with the screened generator arguments into WORK_DIR/synthetic-N, kept
    and reused when complete; a damaged set (an image gone) or a partial one (an interrupted draw) is drawn again
    whole, never half-used."""
    work = tmp_path / 'work'
    out = work / 'synthetic-2'
    first = _recipe_synthetic(work, 2)
    assert 'drawing 2 synthetic training images' in first and f'SYNTHETIC={out}\n' in first
    reference = make_synthetic_hw3(tmp_path / 'reference', num_train=2, num_test=1, seed=0, min_size=256,
                                   max_size=256, keep_border=True)
    names = sorted(p.name for p in (reference / 'train').iterdir())
    assert sorted(p.name for p in (out / 'train').iterdir()) == names and not (work / 'synthetic-2.partial').exists()
    for name in names:  # the same images and labels as the generator called with the CV protocol's arguments
        for path in sorted((reference / 'train' / name).iterdir()):
            assert np.array_equal(read_tiff(out / 'train' / name / path.name), read_tiff(path)), path.name
    stamp = (out / 'train' / names[0] / 'image.tif').stat().st_mtime_ns
    assert 'using the 2 synthetic training images' in _recipe_synthetic(work, 2)
    assert (out / 'train' / names[0] / 'image.tif').stat().st_mtime_ns == stamp  # kept, not drawn again
    (out / 'train' / names[1] / 'image.tif').unlink()  # damaged
    assert 'is not a complete set of 2 synthetic images: drawing it again' in _recipe_synthetic(work, 2)
    assert all((out / 'train' / n / 'image.tif').is_file() for n in names)
    (out / 'synthetic_args.txt').unlink()  # as an interrupted draw leaves it: no arguments file, a .partial beside
    (work / 'synthetic-2.partial' / 'train').mkdir(parents=True)
    assert 'drawing it again' in _recipe_synthetic(work, 2)
    assert (out / 'synthetic_args.txt').is_file() and not (work / 'synthetic-2.partial').exists()


def test_synthetic_option_not_a_number_is_one_line(tmp_path):
    """MONUSEG_SYNTHETIC that is not a count of images: one line, exit 2, before anything is converted or drawn."""
    proc = subprocess.run(['bash', 'tools/misc/monuseg_cpu.sh', str(tmp_path / 'src'), str(tmp_path / 'work')],
                          cwd=REPO, env={**os.environ, 'PY': sys.executable, 'MONUSEG_SYNTHETIC': 'many'},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr == 'monuseg: MONUSEG_SYNTHETIC=many: not a number of images (0 = off)\n'
    assert not (tmp_path / 'work').exists()
