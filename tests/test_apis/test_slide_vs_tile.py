"""Slide = tile accuracy (issue 27): the same pixels segmented as a slide (``segment-slide --detections``, many
seams) and as one image (the tile path of ``tools/predict.py``) score the same AP against the ground truth; the
label image and table of the slide keep only the cells of ``--score-thr``."""
from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
import tifffile
import torch

from mmcell.datasets.image_io import read_image
from mmcell.synthetic.slide import read_ground_truth

pytest.importorskip('mmcv.ops')


@pytest.fixture(scope='module')
def field(tmp_path_factory) -> dict:
    """One 480 x 640 synthetic image (HW3 layout, ground truth beside it) and the same pixels as a tiled TIFF with
    the model's microns per pixel (0.25: no resampling, so any difference comes from the slide path itself)."""
    from mmcell.synthetic.hw3 import make_synthetic_hw3

    root = make_synthetic_hw3(tmp_path_factory.mktemp('field') / 'data', num_train=1, num_test=0, seed=11,
                              min_size=480, max_size=640, keep_border=True, density=1.5)
    name = next(p.name for p in (root / 'train').iterdir())
    image = root / 'train' / name / 'image.tif'
    slide = root / 'field.tif'
    tifffile.imwrite(slide, read_image(str(image)), photometric='rgb', tile=(256, 256), compression='zlib',
                     resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit='CENTIMETER', metadata=None)
    return dict(root=root, name=name, image=str(image), slide=str(slide))


def _instances(bboxes, scores, masks) -> dict:
    return dict(bboxes=torch.as_tensor(np.asarray(bboxes, np.float32)).reshape(-1, 4),
                scores=torch.as_tensor(np.asarray(scores, np.float32)),
                labels=torch.zeros(len(scores), dtype=torch.int64), masks=list(masks))


def _detections(slide_dir: Path) -> dict:
    with gzip.open(slide_dir / 'detections.json.gz', 'rt') as fh:
        entries = json.load(fh)
    return _instances([[e['bbox'][0], e['bbox'][1], e['bbox'][0] + e['bbox'][2], e['bbox'][1] + e['bbox'][3]]
                       for e in entries], [e['score'] for e in entries], [e['segmentation'] for e in entries])


def _figures(field: dict, instances: dict) -> dict:
    from mmcell.apis.evaluate import score_tile_samples, tile_ground_truth
    from mmcell.evaluation.submission import LABEL_SCORE_THR

    sample = dict(tile_ground_truth(field['root'], field['name'], 0), pred_instances=instances)
    return score_tile_samples([sample], pathology_score_thr=LABEL_SCORE_THR)


def _matched(ref: dict, other: dict, min_score: float) -> np.ndarray:
    """Best mask IoU in ``other`` of every detection of ``ref`` scoring at least ``min_score``."""
    keep = np.flatnonzero(ref['scores'].numpy() >= min_score)
    return mask_util.iou([ref['masks'][i] for i in keep], other['masks'], [0] * len(other['masks'])).max(axis=1)


def test_slide_detections_score_as_the_tile_path(trained_quickstart, field, tmp_path):
    """``--detections`` holds what the tile path's contest file holds: on a slide of one tile (the same network
    input as the tile path) the same detections and AP; on 256 px tiles (many seams) the same AP50 within the
    difference the tile context makes, every confident detection once. The label image and table keep the cells of
    ``--score-thr`` (each pixel to one cell): scored by AP they lose the low-scoring detections and the overlaps
    (benchmarks/RESULTS.md, "Slide vs tile accuracy")."""
    from mmcell.apis import init_cell_model, segment_slide
    from mmcell.apis.predict import predict_images
    from mmcell.apis.slide.run import detection_limits
    from mmcell.evaluation.submission import LABEL_SCORE_THR
    from mmcell.utils import load_config

    run = trained_quickstart
    one_tile = 1024  # >= the image: the slide is one tile, read at the model's mpp (no resampling at 0.25)
    # the tile path with the detection limits segment-slide gives a tile of that size
    model = init_cell_model(run.config, run.checkpoint,
                            cfg_options=detection_limits(load_config(run.config), one_tile))
    out = predict_images(model, [field['image']], progress=False)[0]
    pred = out.pred_instances
    tile = _instances(pred.bboxes, pred.scores, pred.masks)

    (whole,) = segment_slide(field['slide'], run.config, run.checkpoint, tmp_path / 'one', tile=one_tile,
                             detections=True, progress=False, num_workers=0)
    (tiled,) = segment_slide(field['slide'], run.config, run.checkpoint, tmp_path / 'tiles', tile=256, overlap=64,
                             detections=True, progress=False, num_workers=0)
    assert whole.tiles == 1 and tiled.tiles >= 6  # seams in both directions
    one, many = _detections(Path(whole.out_dir)), _detections(Path(tiled.out_dir))
    h, w = out.ori_shape
    assert all(list(m['size']) == [h, w] for m in many['masks'])
    figures = {k: _figures(field, v) for k, v in (('tile', tile), ('one tile', one), ('256 px tiles', many))}
    print({k: (round(v['AP50'], 4), round(v['AP'], 4)) for k, v in figures.items()},
          {k: len(v['scores']) for k, v in (('tile', tile), ('one tile', one), ('256 px tiles', many))})
    assert figures['tile']['AP50'] > 0.5 and len(tile['scores']) > 100

    # same network input: the same detections, the same figures
    assert abs(len(one['scores']) - len(tile['scores'])) <= 0.01 * len(tile['scores'])
    best = _matched(tile, one, 0.05)
    assert (best > 0.5).mean() >= 0.99 and np.median(best) >= 0.99
    for key in ('AP50', 'AP'):
        assert abs(figures['one tile'][key] - figures['tile'][key]) <= 0.01
    # tiles: each confident detection once, nearly the same masks (GroupNorm sees another context per tile), AP50
    best = _matched(tile, many, LABEL_SCORE_THR)
    assert (best > 0.5).mean() >= 0.97 and np.median(best) >= 0.9
    assert abs(figures['256 px tiles']['AP50'] - figures['tile']['AP50']) <= 0.04

    # the outputs people read keep the cells of --score-thr only
    slide_dir = Path(tiled.out_dir)
    with gzip.open(slide_dir / 'cells.csv.gz', 'rt', newline='') as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads((slide_dir / 'summary.json').read_text())
    assert rows and min(float(r['score']) for r in rows) >= LABEL_SCORE_THR
    assert summary['detections'] == len(many['scores']) > len(rows) == summary['cells']
    assert 'detections.json.gz' in summary['files'] and tiled.files['detections'].endswith('detections.json.gz')
    # ... and are those of a run without --detections, byte for byte
    (plain,) = segment_slide(field['slide'], run.config, run.checkpoint, tmp_path / 'plain', tile=256, overlap=64,
                             progress=False, num_workers=0)
    for name in ('cells.csv.gz', 'cells.geojson.gz', 'preview.png'):
        assert (Path(plain.out_dir) / name).read_bytes() == (slide_dir / name).read_bytes(), name
    for a, b in zip(*(read_ground_truth(Path(d) / 'labels.ome.tif') for d in (plain.out_dir, slide_dir))):
        assert np.array_equal(a, b)
    assert 'detections' not in plain.files and not (Path(plain.out_dir) / 'detections.json.gz').exists()
