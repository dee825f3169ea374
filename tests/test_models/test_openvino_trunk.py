"""The inference engine switch (``--engine``): the torch route bit for bit, OpenVINO's masks vs torch's, the cache."""
from __future__ import annotations

import copy
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmcv.ops')

from mmcell.apis import init_cell_model  # noqa: E402
from mmcell.models import openvino_trunk  # noqa: E402
from mmcell.models.openvino_trunk import EngineError  # noqa: E402
from mmcell.utils.checkpoint import detector_of  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import QUICKSTART, dense_masks, make_sample_batch, mask_iou, tiny_model_cfg  # noqa: E402

needs_openvino = pytest.mark.skipif(openvino_trunk.openvino_version() is None, reason='OpenVINO is not installed')


@pytest.fixture(scope='module')
def random_ckpt(tmp_path_factory) -> str:
    """A random-weight quickstart Mask R-CNN saved as a checkpoint (the engine cache sits beside it)."""
    from mmdet.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg())
    model.init_weights()
    path = tmp_path_factory.mktemp('engine') / 'random.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return str(path)


def _build(ckpt: str, **kwargs):
    cfg_options = {'model.test_cfg.rcnn.score_thr': 0.0, 'model.test_cfg.rcnn.max_per_img': 100,
                   'model.test_cfg.rpn.nms_pre': 400, 'model.test_cfg.rpn.max_per_img': 200}
    return init_cell_model(QUICKSTART, ckpt, cfg_options=cfg_options, **kwargs)


def _predict(model, batch):
    with torch.no_grad():
        return model.test_step(copy.deepcopy(batch))[0].pred_instances


@pytest.fixture(scope='module')
def batch():
    return make_sample_batch(160, 224, seed=3)


@pytest.fixture
def engine_lines(caplog):
    """The engine's log lines (mmengine's 'current' logger propagates nothing: listen on it directly)."""
    from mmengine.logging import MMLogger

    lines = []

    class Grab(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Grab()
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_torch_engine_is_the_route_of_before_bit_for_bit(random_ckpt, batch):
    """fp32 torch: the default and ``engine='torch'`` give the same boxes, scores and RLE bytes, and a model whose
    engine was installed and removed again predicts as before."""
    ref = _predict(_build(random_ckpt, precision='fp32'), batch)
    model = _build(random_ckpt, precision='fp32', engine='torch')
    assert model.cfg.engine == 'torch'
    got = _predict(model, batch)
    assert len(ref) > 10
    assert torch.equal(ref.bboxes, got.bboxes) and torch.equal(ref.scores, got.scores)
    assert list(ref.masks) == list(got.masks)
    openvino_trunk.install_trunk_engine(detector_of(model), None)
    again = _predict(model, batch)
    assert torch.equal(ref.bboxes, again.bboxes) and list(ref.masks) == list(again.masks)


def test_missing_openvino_is_one_line_and_auto_falls_back(random_ckpt, batch, monkeypatch, engine_lines):
    monkeypatch.setattr(openvino_trunk, 'openvino_version', lambda: None)
    with pytest.raises(EngineError, match=r'^engine openvino: OpenVINO is not installed \(pip install -r '
                                          r'requirements/openvino.txt\)$'):
        _build(random_ckpt, precision='fp32', engine='openvino')
    model = _build(random_ckpt, precision='fp32', engine='auto')
    assert model.cfg.engine == 'torch'
    assert any(line.startswith('engine: torch (auto; OpenVINO is not installed') for line in engine_lines)
    monkeypatch.setattr(openvino_trunk, 'openvino_version', lambda: '2026.4.1')
    monkeypatch.setattr(openvino_trunk, 'cpu_matrix_units', lambda: dict(avx512_bf16=True, amx=False, vnni=True))
    assert openvino_trunk.resolve_engine('auto') == 'torch'  # measured no faster without AMX
    assert 'measured no faster than torch here' in engine_lines[-1]
    monkeypatch.setattr(openvino_trunk, 'cpu_matrix_units', lambda: dict(avx512_bf16=True, amx=True, vnni=True))
    assert openvino_trunk.resolve_engine('auto') == 'openvino'
    assert openvino_trunk.resolve_engine('auto', device='cuda:0') == 'torch'
    with pytest.raises(EngineError, match='fast Mask R-CNN only'):
        _build(random_ckpt, precision='fp32', engine='openvino', fast=False)


def _matched_iou(ref, got) -> np.ndarray:
    """Per reference mask, the IoU of the same-box prediction of ``got`` (boxes matched by IoU)."""
    from mmdet.structures.bbox import bbox_overlaps

    overlaps = bbox_overlaps(ref.bboxes, got.bboxes)
    best = overlaps.argmax(dim=1).numpy()
    a, b = dense_masks(ref.masks), dense_masks(got.masks)
    return mask_iou(a, b[best])


@needs_openvino
def test_openvino_trunk_matches_torch(random_ckpt, batch, engine_lines):
    """OpenVINO fp32 trunk: FPN features to float rounding, the masks of the same detections (IoU >= 0.95 mean)."""
    ref_model = _build(random_ckpt, precision='fp32')
    model = _build(random_ckpt, precision='fp32', engine='openvino')
    assert model.cfg.engine == 'openvino'
    assert any(line.startswith('engine: openvino ') for line in engine_lines)
    det, ref_det = detector_of(model), detector_of(ref_model)
    with torch.no_grad():
        x = ref_det.data_preprocessor(copy.deepcopy(batch), False)['inputs']
        ref_feats, feats = ref_det.extract_feat(x), det.extract_feat(x)
        assert det.__dict__['_trunk_rpn'][0] is feats[0]  # the RPN outputs wait for the RPN head
        ref_rpn = ref_det.rpn_head(ref_feats)
        rpn = det.rpn_head(feats)
        assert '_trunk_rpn' not in det.__dict__
    for a, b in zip(ref_feats, feats):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1e-4 * max(1.0, float(a.abs().max()))
    for a, b in zip(ref_rpn[0] + ref_rpn[1], rpn[0] + rpn[1]):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    ref, got = _predict(ref_model, batch), _predict(model, batch)
    assert abs(len(ref) - len(got)) <= 2
    ious = _matched_iou(ref, got)
    assert ious.mean() >= 0.95, ious.mean()


@needs_openvino
def test_engine_cache_is_reused_and_rebuilt(random_ckpt, batch, engine_lines, tmp_path):
    """The cache beside the checkpoint: reused as is, a damaged blob or manifest and a stale key rebuilt with one
    line each, and the masks are the same whichever way the trunk was loaded."""
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(Path(random_ckpt).read_bytes())
    cache = Path(f'{ckpt}.openvino')
    first = _predict(_build(str(ckpt), precision='fp32', engine='openvino'), batch)
    manifest = json.loads((cache / 'cache.json').read_text())
    assert set(manifest['files']) == {'trunk.xml', 'trunk.bin', 'trunk-fp32.blob'}
    assert manifest['key']['openvino'] == openvino_trunk.openvino_version()

    engine_lines.clear()
    again = _predict(_build(str(ckpt), precision='fp32', engine='openvino'), batch)
    assert not [ln for ln in engine_lines if 'engine cache' in ln]
    assert list(first.masks) == list(again.masks)

    blob = cache / 'trunk-fp32.blob'
    blob.write_bytes(blob.read_bytes()[:1000])  # cut short
    again = _predict(_build(str(ckpt), precision='fp32', engine='openvino'), batch)
    assert [ln for ln in engine_lines if 'engine cache' in ln] == [
        f'engine cache {blob}: damaged (digest differs); rebuilding it']
    assert list(first.masks) == list(again.masks)
    assert blob.stat().st_size > 1000  # written again

    engine_lines.clear()
    (cache / 'cache.json').write_text('{"key": ')
    _build(str(ckpt), precision='fp32', engine='openvino')
    assert [ln for ln in engine_lines if 'engine cache' in ln][0].startswith(f'engine cache {cache}: damaged (')

    engine_lines.clear()
    sd = torch.load(ckpt, weights_only=True)
    sd['state_dict'] = {k: v + 0.01 if k == 'backbone.conv1.weight' else v for k, v in sd['state_dict'].items()}
    torch.save(sd, ckpt)  # the same path, new weights
    changed = _predict(_build(str(ckpt), precision='fp32', engine='openvino'), batch)
    assert [ln for ln in engine_lines if 'engine cache' in ln] == [
        f'engine cache {cache}: stale (checkpoint_sha256 changed); rebuilding it']
    reference = _predict(_build(str(ckpt), precision='fp32'), batch)
    assert _matched_iou(reference, changed).mean() >= 0.95


@needs_openvino
def test_int8_without_a_quantised_trunk_is_one_line(random_ckpt):
    with pytest.raises(EngineError, match=r'no quantised trunk for .*random\.pth; make it with tools/misc/'
                                          r'quantize\.py'):
        _build(random_ckpt, precision='int8', engine='openvino')


@needs_openvino
def test_quantize_tool_int8_trunk_within_tolerance(random_ckpt, batch, synthetic_hw3, tmp_path, capsys):
    """tools/misc/quantize.py: NNCF int8 trunk calibrated on the synthetic images, stored in the engine cache,
    used by ``--precision int8 --engine openvino``; its masks stay close to torch fp32's."""
    pytest.importorskip('nncf')
    from tests.conftest import load_script

    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(Path(random_ckpt).read_bytes())
    quantize = load_script('tools/misc/quantize.py')
    path = quantize.quantize(QUICKSTART, str(ckpt), str(synthetic_hw3), subset=4)
    assert path == Path(f'{ckpt}.openvino') / 'trunk-int8.xml' and path.is_file()
    assert 'int8 trunk calibrated on 4 images' in capsys.readouterr().out
    model = _build(str(ckpt), precision='int8', engine='openvino')
    assert detector_of(model).roi_head.mask_head.precision == 'fp32'  # the torch heads: float32
    got = _predict(model, batch)
    ref = _predict(_build(str(ckpt), precision='fp32'), batch)
    assert len(got) > 10
    # random weights amplify the quantisation error (0.72 measured here); the trained quickstart model's int8 trunk
    # keeps 0.977 on a MoNuSeg tile (benchmarks/RESULTS.md, "Inference engine")
    assert _matched_iou(ref, got).mean() >= 0.6
    with pytest.raises(SystemExit, match='calibration data not found'):
        quantize.main([QUICKSTART, str(ckpt), '--data', str(tmp_path / 'missing')])
