"""Classes to the user: the checkpoint's class names and their stable colours in every output of ``mmcell segment``
and ``segment-slide``, per-class counts and the preview legend, the box head's class margin per detection
(bit-identical boxes, scores and labels) and ``--review-below`` flagging uncertain classes."""
from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from oracles import GroundTruthOracle

from mmcell.datasets.metainfo import NAMED_COLORS, class_color
from mmcell.exporters.cells import class_names_colors

pytest.importorskip('mmcv.ops')

CONSEP = ('other', 'inflammatory', 'epithelial', 'spindle')


def test_colours_follow_the_name_not_the_index():
    names, colors = class_names_colors(dict(classes=('spindle', 'epithelial', 'My Tumour'), palette=[(1, 2, 3)] * 3))
    assert names == ('spindle', 'epithelial', 'My Tumour')
    assert colors[:2] == [NAMED_COLORS['spindle'], NAMED_COLORS['epithelial']]
    assert colors[2] == class_color('My Tumour') == class_names_colors(dict(classes=('My Tumour', )))[1][0]
    assert class_color('Epithelial') == NAMED_COLORS['epithelial']  # case does not matter
    assert class_names_colors(None)[0] == ('epithelial', 'lymphocyte', 'macrophage', 'neutrophil')


@pytest.fixture(scope='module')
def renamed_checkpoint(trained_quickstart, tmp_path_factory) -> str:
    """The session's model with CoNSeP's class names in its metainfo (what a model trained on converted CoNSeP
    carries): outputs must name classes from the checkpoint, not from the config or the HW3 defaults."""
    from mmcell.utils.checkpoint import read_checkpoint

    ckpt = read_checkpoint(trained_quickstart.checkpoint)
    meta = dict(dataset_meta=dict(ckpt['meta'].get('dataset_meta') or {}, classes=CONSEP))
    path = tmp_path_factory.mktemp('renamed') / 'consep_names.pth'
    torch.save(dict(state_dict=ckpt['state_dict'], meta=meta), path)
    return str(path)


def test_segment_writes_the_checkpoint_class_names(trained_quickstart, renamed_checkpoint, tmp_path):
    from mmcell.apis import segment

    image = sorted(Path(trained_quickstart.data_root, 'test_release').glob('*.tif'))[0]
    (seg, ) = segment([str(image)], trained_quickstart.config, renamed_checkpoint, out_dir=str(tmp_path),
                      score_thr=0.0, progress=False)
    assert len(seg.table)
    with open(seg.files['table']) as fh:
        rows = list(csv.DictReader(fh))
    assert {r['class'] for r in rows} <= set(CONSEP)
    assert all(r['class'] == CONSEP[int(r['class_id']) - 1] for r in rows)
    geo = json.loads(Path(seg.files['geojson']).read_text())
    assert geo['metadata']['classes'] == list(CONSEP)
    for feat in geo['features']:
        cls = feat['properties']['classification']
        assert cls['name'] in CONSEP and tuple(cls['color']) == NAMED_COLORS[cls['name']]


def test_class_margin_keeps_boxes_bit_identical(trained_quickstart):
    """The fast RoI head's class margins come with the very boxes, scores and labels of mmdet's predict_bbox."""
    from mmdet.models.roi_heads import StandardRoIHead

    from mmcell.apis.builder import init_cell_model
    from mmcell.datasets.image_io import read_image
    from mmcell.models.fast_mask_rcnn import detect_boxes

    model = init_cell_model(trained_quickstart.config, trained_quickstart.checkpoint)
    det = model
    image = sorted(Path(trained_quickstart.data_root, 'test_release').glob('*.tif'))[0]
    from mmdet.structures import DetDataSample

    rgb = read_image(str(image))
    img = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1].transpose(2, 0, 1)))
    sample = DetDataSample(metainfo=dict(img_shape=rgb.shape[:2], ori_shape=rgb.shape[:2], scale_factor=(1.0, 1.0),
                                         batch_input_shape=rgb.shape[:2]))
    cfg = det.roi_head.test_cfg.copy()
    cfg.score_thr = 0.0  # every RoI's best classes: many detections, margins of every sign
    with torch.no_grad():
        feats, sample, _ = detect_boxes(det, img, sample)
        rpn = det.rpn_head.predict(feats, [sample], rescale=False)
        ours = det.roi_head.predict_bbox(feats, [sample.metainfo], rpn, cfg, rescale=False)[0]
        ref = StandardRoIHead.predict_bbox(det.roi_head, feats, [sample.metainfo], rpn, cfg, rescale=False)[0]
    assert len(ours) > 10 and set(ref.keys()) == {'bboxes', 'scores', 'labels'}
    for key in ('bboxes', 'scores', 'labels'):
        assert torch.equal(ours[key], ref[key]), key
    assert ours.class_margin.shape == ours.scores.shape and ours.runner_up.shape == ours.labels.shape
    assert (ours.runner_up != ours.labels).all() and (ours.class_margin <= ours.scores).all()
    assert (ours.class_margin >= 2 * ours.scores - 1 - 1e-6).all()  # one softmax: what s leaves the others
    assert (ours.class_margin > 0).any() and (ours.class_margin < 0).any()  # the same RoI as another class too


class HesitantOracle(GroundTruthOracle):
    """The ground truth visible in each tile, every third nucleus (by id) scored 0.4 and the others 0.9, with a
    class margin that depends on its id (0.0, 0.1, ... 0.4) and the next class as runner-up: what
    FastStandardRoIHead keeps per detection."""

    def __init__(self, gt_path: str, config: str) -> None:
        super().__init__(gt_path, CONSEP, config)

    def score(self, key: int, mask: np.ndarray) -> float:
        return 0.4 if key % 3 == 0 else 0.9

    def extra(self, pred, keys: list, labels: list) -> None:
        pred.class_margin = torch.tensor([(k % 5) / 10 for k in keys], dtype=torch.float32)
        pred.runner_up = torch.tensor([(c + 1) % 4 for c in labels], dtype=torch.long)


def test_segment_slide_names_counts_legend_and_uncertain_classes(tmp_path):
    from conftest import quickstart_config

    from mmcell.apis import segment_slide
    from mmcell.synthetic.slide import write_synthetic_slide

    slide = write_synthetic_slide(tmp_path / 'tissue.ome.tif', (700, 600), mpp=0.25, seed=3, tissue_fraction=0.6)
    model = HesitantOracle(slide['ground_truth'], quickstart_config())
    (res, ) = segment_slide(slide['slide'], None, None, tmp_path / 'run', tile=256, overlap=112, score_thr=0.0,
                            model=model, progress=False, num_workers=0, review_below=0.5, review_margin=0.25)
    out = Path(res.out_dir)
    with gzip.open(out / 'cells.csv.gz', 'rt', newline='') as fh:
        rows = list(csv.DictReader(fh))
    with gzip.open(out / 'cells.geojson.gz', 'rt') as fh:
        features = json.load(fh)['features']
    summary = json.loads((out / 'summary.json').read_text())
    assert len(rows) == summary['cells'] > 10
    assert {r['class'] for r in rows} <= set(CONSEP)
    assert summary['cells_per_class'] == {c: sum(r['class'] == c for r in rows) for c in CONSEP}
    for row, feat in zip(rows, features):
        assert feat['properties']['classification']['name'] == row['class']
        assert tuple(feat['properties']['classification']['color']) == NAMED_COLORS[row['class']]
        assert row['second_class'] == CONSEP[(CONSEP.index(row['class']) + 1) % 4]
        assert feat['properties']['measurements']['Class margin'] == float(row['class_margin'])
    # review: the cells whose margin is below 0.25 (0.0, 0.1, 0.2) named for their class, low scorers among them
    # too (a score split between two classes); the other cells scoring below 0.5 named for their score
    review = json.loads((out / 'review.geojson').read_text())
    uncertain = {r['uuid']: r for r in rows if float(r['class_margin']) < 0.25}
    low = {r['uuid']: r for r in rows if float(r['score']) < 0.5 and r['uuid'] not in uncertain}
    assert 0 < len(uncertain) < len(rows) and low
    assert any(float(r['score']) < 0.5 for r in uncertain.values())
    assert {f['id'] for f in review['features']} == set(uncertain) | set(low)
    for f in review['features']:
        row = uncertain.get(f['id'])
        expected = f'check class: {row["class"]} or {row["second_class"]}?' if row else \
            f'check outline: score {float(low[f["id"]]["score"]):.2f}'
        assert f['properties']['name'] == expected
        assert f['properties']['objectType'] == 'annotation'
    assert summary['cells_to_review'] == len(uncertain) + len(low)
    assert summary['cells_to_review_uncertain_class'] == len(uncertain)
    assert summary['cells_to_review_low_score'] == len(low) and review['metadata']['review_margin'] == 0.25
    # the preview: the thumbnail with a legend band below it, one coloured dot per class
    preview = cv2.imread(str(out / 'preview.png'))[..., ::-1]
    band = preview[-22:]
    for name in CONSEP:
        assert (np.abs(band.astype(int) - NAMED_COLORS[name]).sum(axis=2) == 0).sum() > 10, name

