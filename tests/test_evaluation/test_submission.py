"""The contest submission writer and validator on the synthetic test split (no model needed)."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmcell.datasets.hw3_format import read_test_ids
from mmcell.datasets.metainfo import CONTEST_MAX_DETS, SUBMISSION_JSON
from mmcell.evaluation import submission as sub
from mmcell.evaluation.functional.coco import contest_ap50, gt_as_results
from mmcell.evaluation.metrics.cell_coco_metric import evaluate_submission
from mmcell.evaluation.submission import writer as submission_writer
from mmcell.structures.rle import encode_mask


@pytest.fixture(scope='module')
def release(synthetic_hw3):
    images = read_test_ids(synthetic_hw3 / 'test_image_name_to_ids.json', synthetic_hw3 / 'test_release')
    gt_file = synthetic_hw3 / 'test_gt_coco.json'
    return images, str(gt_file), json.loads(gt_file.read_text())


def _plain_pycocotools_ap50(gt_file: str, results_file: str) -> float:
    """The contest's figure: plain pycocotools, default params (maxDets 1, 10, 100), segm, stats[1]."""
    coco_gt = COCO(gt_file)
    ev = COCOeval(coco_gt, coco_gt.loadRes(results_file), iouType='segm')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[1])


def _perturbed(gt: dict, seed: int = 0, copies: int = 60) -> list:
    """Realistic imperfect predictions: GT with shifted masks, random scores, some wrong classes, and many
    low-score duplicates so that some image/category pairs exceed the contest's 100 detections."""
    rng = np.random.default_rng(seed)
    out = []
    for det in gt_as_results(gt):
        h, w = det['segmentation']['size']
        mask = mask_utils.decode({'size': [h, w], 'counts': det['segmentation']['counts'].encode()})
        for c in range(copies if rng.random() < 0.5 else 1):
            shifted = np.roll(mask, tuple(rng.integers(-3, 4, 2)), axis=(0, 1)) if c else mask
            cat = det['category_id'] if rng.random() < 0.8 else int(rng.integers(1, 5))
            out.extend(sub.encode_instances(det['image_id'], h, w, [cat - 1], [rng.random() * (0.2 if c else 1)],
                                            shifted[None]))
    return out


def test_round_trip_gt_scores_ap50_one(release, tmp_path):
    images, gt_file, gt = release
    out = tmp_path / 'gt_submission.zip'
    report = sub.write_submission(gt_as_results(gt), out, images)
    assert report.ok and report.num_detections == len(gt['annotations'])
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == [SUBMISSION_JSON]
    metrics = evaluate_submission(sub.load_submission(out), gt_file)
    assert metrics['segm_mAP_50_md1000'] == pytest.approx(1.0)
    assert metrics['segm_mAP_50'] == pytest.approx(1.0)


def test_contest_figure_equals_plain_pycocotools(release, tmp_path):
    images, gt_file, gt = release
    results = _perturbed(gt)
    per_pair = {}
    for r in results:
        per_pair[(r['image_id'], r['category_id'])] = per_pair.get((r['image_id'], r['category_id']), 0) + 1
    assert max(per_pair.values()) > CONTEST_MAX_DETS  # the maxDets cap matters on this file
    out = tmp_path / 'test-results.json'
    report = sub.write_submission(results, out, images)
    assert report.beyond_contest_cap > 0
    plain = _plain_pycocotools_ap50(gt_file, str(out))
    ours = evaluate_submission(sub.load_submission(out), gt_file)
    assert 0.0 < plain < 1.0
    assert ours['segm_mAP_50'] == pytest.approx(plain, abs=1e-3)  # the metric rounds to 3 decimals
    assert contest_ap50(gt, sub.load_submission(out)) == pytest.approx(plain, abs=1e-12)
    assert ours['segm_mAP_50_md1000'] >= ours['segm_mAP_50']


def test_encode_instances_options():
    h, w = 40, 50
    masks = np.zeros((4, h, w), np.float32)
    masks[0, 0:6, 0:6] = 0.9  # touches the border
    masks[1, 10:20, 10:20] = 0.6
    masks[2, 20:30, 25:35] = 0.4  # empty at mask_thr 0.5
    masks[3, 15:25, 30:40] = 0.8
    boxes = [[0, 0, 6, 6], [10, 10, 20, 20], [25, 20, 35, 30], [30, 15, 40, 25]]
    args = (5, h, w, [0, 1, 2, 3], np.array([0.9, 0.3, 0.8, 0.05]), masks, boxes)
    res = sub.encode_instances(*args)
    assert [r['category_id'] for r in res] == [1, 2, 4]  # score order, empty mask dropped
    assert res[1]['bbox'] == [10.0, 10.0, 10.0, 10.0]
    assert mask_utils.area({'size': [h, w], 'counts': res[1]['segmentation']['counts'].encode()}) == 100
    assert [r['category_id'] for r in sub.encode_instances(*args, sub.SubmissionOptions(mask_thr=0.3))] == [1, 3, 2, 4]
    assert len(sub.encode_instances(*args, sub.SubmissionOptions(score_thr=0.1))) == 2
    assert len(sub.encode_instances(*args, sub.SubmissionOptions(max_per_img=1))) == 1
    assert [r['category_id'] for r in sub.encode_instances(*args, sub.SubmissionOptions(border_margin=1))] == [2, 4]
    with pytest.raises(sub.SubmissionError, match='original size'):
        sub.encode_instances(5, h + 1, w, [0], [0.5], masks[:1])
    with pytest.raises(sub.SubmissionError, match='label 4'):
        sub.encode_instances(5, h, w, [4], [0.5], masks[:1])


def test_rle_counts_total_matches_pycocotools():
    rng = np.random.default_rng(1)
    for trial in range(50):
        h, w = (int(v) for v in rng.integers(1, 120, 2))
        mask = rng.random((h, w)) < rng.random() if trial % 2 else np.zeros((h, w), bool)
        if trial % 2 == 0:
            mask[rng.integers(0, h):, rng.integers(0, w):] = True
        rle = encode_mask(mask)
        assert sub.rle_counts_total(rle['counts']) == h * w
        assert (mask_utils.decode({'size': [h, w], 'counts': rle['counts'].encode()}) == mask).all()
    assert sub.rle_counts_total(rle['counts'][:-1]) != h * w
    assert sub.rle_counts_total('not an rle ~~~') == -1


def test_validator_reports_each_problem(release, tmp_path):
    images, _, gt = release
    good = gt_as_results(gt)
    first = good[0]
    img = next(i for i in images if i['id'] == first['image_id'])
    bad_size = encode_mask(np.ones((img['height'] + 1, img['width']), bool))
    broken = [
        dict(first, image_id=999),
        dict(first, category_id=0),
        dict(first, score=1.5),
        dict(first, segmentation=bad_size),
        dict(first, segmentation=dict(first['segmentation'], counts=first['segmentation']['counts'][:-2])),
        {k: v for k, v in first.items() if k != 'bbox'},
    ]
    report = sub.validate_submission(good + broken, images)
    assert len(report.errors) == len(broken)
    for err, needle in zip(report.errors, ['not in the ids json', 'category_id', 'score', 'segmentation size',
                                           'does not decode', 'missing key']):
        assert needle in err
    # An image with no detection is reported, not an error.
    only_one = [r for r in good if r['image_id'] == first['image_id']]
    report = sub.validate_submission(only_one, images)
    assert report.ok and len(report.images_without_detections) == len(images) - 1
    # The writer refuses an invalid list with one line naming the file.
    with pytest.raises(sub.SubmissionError, match=r'bad\.zip: entry'):
        sub.write_submission(good + broken[:1], tmp_path / 'bad.zip', images)
    assert not (tmp_path / 'bad.zip').exists()


def test_atomic_write_survives_crash(release, tmp_path, monkeypatch):
    images, _, gt = release
    results = gt_as_results(gt)
    for name in ('sub.zip', 'sub.json'):
        out = tmp_path / name
        sub.write_submission(results, out, images)
        before = out.read_bytes()

        def crash(fh, data, chunk=1 << 20):
            fh.write(data[:len(data) // 2])
            raise KeyboardInterrupt('simulated crash mid-write')

        with monkeypatch.context() as m:
            m.setattr(submission_writer, '_write_bytes', crash)
            with pytest.raises(KeyboardInterrupt):
                sub.write_submission(results[:3], out, images)
        assert out.read_bytes() == before  # the previous submission is intact ...
        assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')]  # no temp file left behind
        assert sub.validate_submission(out, images).ok  # ... and still valid


def test_unwritable_output_is_one_line(release, tmp_path):
    images, _, gt = release
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    with pytest.raises(sub.SubmissionError) as err:
        sub.write_submission(gt_as_results(gt), blocker / 'out.zip', images)
    assert str(err.value).startswith(str(blocker / 'out.zip')) and '\n' not in str(err.value)
    with pytest.raises(sub.SubmissionError, match=r'\.zip \(Codabench\) or \.json'):
        sub.write_submission([], tmp_path / 'out.txt')


def test_check_submission_tool(release, synthetic_hw3, tmp_path, capsys):
    from tests.conftest import load_script

    tool = load_script('tools/misc/check_submission.py')
    images, _, gt = release
    out = tmp_path / 'ok.zip'
    sub.write_submission(gt_as_results(gt), out, images)
    assert tool.main([str(out), '--data-root', str(synthetic_hw3)]) == 0
    assert 'valid' in capsys.readouterr().out
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps([dict(gt_as_results(gt)[0], image_id=12345)]))
    assert tool.main([str(bad), '--data-root', str(synthetic_hw3)]) == 1
    assert 'not in the ids json' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='test ids file not found'):
        tool.main([str(out), '--data-root', str(tmp_path)])
