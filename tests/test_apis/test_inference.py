"""Inference API and tools/predict.py on a real (briefly trained) model and the synthetic release folder."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

pytest.importorskip('mmcv.ops')

import cv2  # noqa: E402
import torch  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402

from mmcell import apis as api
from mmcell.apis.builder import build_test_pipeline  # noqa: E402
from mmcell.datasets.hw3_format import read_test_ids  # noqa: E402
from mmcell.evaluation.submission import SubmissionError, load_submission, validate_submission  # noqa: E402
from mmcell.structures.rle import masks_to_bool  # noqa: E402
from mmcell.utils.checkpoint import CheckpointError  # noqa: E402
from mmcell.utils.errors import HW3FormatError  # noqa: E402
from tests.conftest import load_script  # noqa: E402

UPSCALE_PIPELINE = [
    dict(type='LoadCellImage'),
    dict(type='Resize', scale=(4000, 512), keep_ratio=True),  # 96-256 px images become 512 px on the short side
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]


@pytest.fixture(scope='module')
def model(trained_quickstart):
    return api.init_cell_model(trained_quickstart.config, trained_quickstart.checkpoint,
                           cfg_options={'test_dataloader.dataset.pipeline': UPSCALE_PIPELINE})


@pytest.fixture(scope='module')
def release(synthetic_hw3):
    images = read_test_ids(synthetic_hw3 / 'test_image_name_to_ids.json', synthetic_hw3 / 'test_release')
    return synthetic_hw3, images


def test_upscaled_predictions_map_back_to_original_size(model, release):
    root, images = release
    path = str(root / 'test_release' / images[0]['file_name'])
    h, w = images[0]['height'], images[0]['width']
    [sample] = api.predict_images(model, [path], sizes=[(h, w)], progress=False)
    assert sample.img_shape[0] >= 2 * h - 1  # the model really saw an upscaled image
    masks = masks_to_bool(sample.pred_instances.masks, *sample.ori_shape[:2])
    assert masks.shape[1:] == (h, w)
    assert len(masks) > 0, 'the trained model predicts nothing on a synthetic test image'

    # The same forward pass without rescaling gives predictions at the model's input size: boxes must be the
    # original ones times the scale factor, masks the original ones upsampled.
    data = build_test_pipeline(model.cfg)(dict(img_path=path, img_id=0))
    with torch.no_grad():
        batch = model.data_preprocessor(pseudo_collate([data]), False)
        big = model.predict(batch['inputs'], copy.deepcopy(batch['data_samples']), rescale=False)[0]
    sx, sy = big.scale_factor
    assert len(big.pred_instances) == len(sample.pred_instances)
    expected = sample.pred_instances.bboxes.numpy() * np.array([sx, sy, sx, sy])
    assert np.allclose(big.pred_instances.bboxes.numpy(), expected, atol=1e-2)
    big_masks = masks_to_bool(big.pred_instances.masks, *big.ori_shape[:2])
    ious = []
    for small, large in zip(masks, big_masks):
        if small.sum() < 20:
            continue
        # majority vote of the upscaled pixels that fall in each original pixel
        down = cv2.resize(large.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
        ious.append((down & small).sum() / max((down | small).sum(), 1))
    # Masks are resampled from the same 28x28 logits at two resolutions, so a weakly trained model's soft, tiny
    # masks differ at their rims (IoU ~0.3-0.9); a mapping error (scale, offset, padding) would give IoU ~0.
    assert ious and np.median(ious) > 0.6, ious


def test_predict_release_writes_a_valid_submission(model, release, tmp_path):
    root, images = release
    out = tmp_path / 'results.zip'
    report = api.predict_release(model, str(root), str(out), progress=False)
    assert report.ok and report.num_detections > 0
    again = validate_submission(out, images)
    assert again.ok and again.num_detections == report.num_detections
    ids = {r['image_id'] for r in load_submission(out)}
    assert ids <= {img['id'] for img in images}


def test_predict_tool_writes_a_bare_json(trained_quickstart, release, tmp_path, capsys):
    root, images = release
    tool = load_script('tools/predict.py')
    base = [trained_quickstart.config, trained_quickstart.checkpoint]

    out = tmp_path / 'bare.json'
    tool.main(base + ['--data-root', str(root), '--out', str(out), '--score-thr', '0.3', '--max-per-img', '5'])
    results = json.loads(out.read_text())
    assert isinstance(results, list) and all(r['score'] >= 0.3 for r in results)
    assert max(sum(r['image_id'] == img['id'] for r in results) for img in images) <= 5
    assert 'valid' in capsys.readouterr().out

    # bad inputs of predict.py: one row each in tests/test_tools/test_bad_input_table.py


def test_num_classes_mismatch_is_refused(trained_quickstart):
    opts = {'model.roi_head.bbox_head.num_classes': 2, 'model.roi_head.mask_head.num_classes': 2}
    with pytest.raises(CheckpointError, match='trained for 4 classes .* num_classes=2'):
        api.init_cell_model(trained_quickstart.config, trained_quickstart.checkpoint, cfg_options=opts)
    with pytest.raises(CheckpointError, match='checkpoint file not found'):
        api.init_cell_model(trained_quickstart.config, trained_quickstart.checkpoint + '.missing')
    assert issubclass(HW3FormatError, ValueError) and issubclass(SubmissionError, ValueError)
    assert issubclass(CheckpointError, ValueError)


def test_checkpoint_without_weights_never_predicts(trained_quickstart, tmp_path):
    """``{'state_dict': {}}`` or a checkpoint missing part of the model is refused, never run on random weights."""
    from mmcell.utils.checkpoint import read_checkpoint

    empty = tmp_path / 'empty_state.pth'
    torch.save({'state_dict': {}}, empty)
    with pytest.raises(CheckpointError, match='state_dict is empty'):
        api.init_cell_model(trained_quickstart.config, str(empty))
    no_sd = tmp_path / 'no_state.pth'
    torch.save({'meta': {'epoch': 1}}, no_sd)
    with pytest.raises(CheckpointError, match='no state_dict'):
        api.init_cell_model(trained_quickstart.config, str(no_sd))
    partial = tmp_path / 'partial.pth'
    ckpt = read_checkpoint(trained_quickstart.checkpoint)
    ckpt['state_dict'] = {k: v for k, v in ckpt['state_dict'].items() if not k.startswith('roi_head.mask_head')}
    torch.save(ckpt, partial)
    with pytest.raises(CheckpointError, match=r'weights of the model .* are missing \(e.g. roi_head.mask_head'):
        api.init_cell_model(trained_quickstart.config, str(partial))


@pytest.mark.parametrize('variant', [dict(), dict(fast=False), dict(tta=True), dict(tile=128)])
def test_one_builder_for_every_variant(trained_quickstart, variant):
    """fast by default, --no-fast, TTA and tiling all come from the same builder with the checkpoint loaded."""
    from mmcell.utils.checkpoint import detector_of, read_checkpoint

    model = api.init_cell_model(trained_quickstart.config, trained_quickstart.checkpoint, device='cpu',
                                      **variant)
    expected = {'tta': 'CellTTAModel', 'tile': 'TiledDetector'}
    wrapper = next((v for k, v in expected.items() if k in variant), None)
    detector = detector_of(model)
    assert type(model).__name__ == (wrapper or type(detector).__name__)
    assert type(detector).__name__ == ('MaskRCNN' if variant.get('fast') is False else 'FastMaskRCNN')
    weights = read_checkpoint(trained_quickstart.checkpoint)['state_dict']
    key = 'roi_head.mask_head.conv_logits.weight'
    assert torch.equal(detector.state_dict()[key], weights[key])
    assert model.dataset_meta['classes'] == ('epithelial', 'lymphocyte', 'macrophage', 'neutrophil')
    if wrapper == 'CellTTAModel':  # limits come from the detector's test_cfg (their one home)
        assert model.tta_cfg['max_per_img'] == detector.roi_head.test_cfg.max_per_img
