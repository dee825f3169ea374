"""``--precision int8-bf16``: the OpenVINO int8 trunk with the torch RoI heads in bfloat16, through the one builder.

The route's resolution (no OpenVINO needed) and, where OpenVINO and NNCF are installed, its masks and AP50 against
torch fp32 on the suite's trained quickstart model (its int8 trunk calibrated by ``tools/misc/quantize.py`` on the
synthetic images).
"""
from __future__ import annotations

import copy
import gc
import shutil
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmcv.ops')

from mmcell.models import openvino_trunk  # noqa: E402
from mmcell.models.openvino_trunk import EngineError  # noqa: E402
from mmcell.utils import precision as prec  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import dense_masks, mask_iou  # noqa: E402

needs_openvino = pytest.mark.skipif(openvino_trunk.openvino_version() is None, reason='OpenVINO is not installed')


@pytest.fixture(autouse=True)
def _free_openvino():
    """Free this test's OpenVINO objects before the next test: a detector holding an engine sits in a reference
    cycle (its RPN head's patched forward), so without a collection its compiled model would be destroyed at some
    later point, e.g. after a slide test forked its DataLoader workers."""
    yield
    gc.collect()


def test_the_route_resolves_to_openvino_or_one_line(monkeypatch):
    """int8-bf16 exists on OpenVINO only: ``auto`` picks it on any CPU (no AMX needed), ``torch`` and a missing
    OpenVINO are one-line errors (no silent fallback to another precision), training refuses it."""
    with pytest.raises(ValueError, match='^precision int8-bf16 is for inference only; train in fp32 or bf16$'):
        prec.resolve_precision('int8-bf16', training=True, log=False)
    with pytest.raises(ValueError, match='a CPU path'):
        prec.resolve_precision('int8-bf16', device='cuda:0', log=False)
    assert prec.resolve_precision('int8-bf16', log=False) == 'int8-bf16'
    with pytest.raises(EngineError, match=r'^precision int8-bf16: the OpenVINO int8 trunk with bf16 heads; needs '
                                          r'--engine openvino \(or auto\)$'):
        openvino_trunk.resolve_engine('torch', precision='int8-bf16', log=False)
    monkeypatch.setattr(openvino_trunk, 'openvino_version', lambda: '2026.4.1')
    monkeypatch.setattr(openvino_trunk, 'cpu_matrix_units', lambda: dict(avx512_bf16=True, amx=False, vnni=True))
    assert openvino_trunk.resolve_engine('auto', precision='int8-bf16', log=False) == 'openvino'
    assert openvino_trunk.resolve_engine('auto', precision='bf16', log=False) == 'torch'  # measured: torch there
    monkeypatch.setattr(openvino_trunk, 'openvino_version', lambda: None)
    with pytest.raises(EngineError, match=r'^engine openvino: OpenVINO is not installed'):
        openvino_trunk.resolve_engine('auto', precision='int8-bf16', log=False)
    assert openvino_trunk.HEADS_PRECISION['int8-bf16'] == 'bf16' and openvino_trunk.HEADS_PRECISION['int8'] == 'fp32'


def _sample_batch(model, image: str) -> dict:
    from mmcell.apis.builder import build_test_pipeline

    data = build_test_pipeline(model.cfg)(dict(img_path=image, img_id=0))
    return dict(inputs=[data['inputs']], data_samples=[data['data_samples']])


def _predict(model, batch):
    with torch.no_grad():
        return model.test_step(copy.deepcopy(batch))[0].pred_instances


@needs_openvino
def test_int8_trunk_bf16_heads_masks_and_ap50_near_fp32(trained_quickstart, tmp_path):
    """The mixed route on the trained quickstart model: the int8 trunk from the engine cache (its float parts in
    f32: the blob of ``int8``), the torch box and mask heads in bf16; its masks match torch fp32's (mean IoU of
    matched detections) and its AP50 on the synthetic set stays within 0.03."""
    pytest.importorskip('nncf')
    from mmdet.structures.bbox import bbox_overlaps

    from mmcell.apis import init_cell_model
    from mmcell.apis.evaluate import evaluate_data_root
    from mmcell.utils.checkpoint import detector_of
    from tests.conftest import load_script

    ckpt = tmp_path / 'model.pth'  # the engine cache goes beside it: not into the shared fixture
    shutil.copy(trained_quickstart.checkpoint, ckpt)
    config, data = trained_quickstart.config, trained_quickstart.data_root
    load_script('tools/misc/quantize.py').quantize(config, str(ckpt), data, subset=6)
    model = init_cell_model(config, str(ckpt), precision='int8-bf16', engine='auto')
    det = detector_of(model)
    assert model.cfg.engine == 'openvino' and model.cfg.precision == 'int8-bf16'
    assert det.precision == 'bf16' and det.roi_head.mask_head.precision == 'bf16'  # the torch heads
    assert det.__dict__['_trunk_engine'].precision == 'int8-bf16'
    ref_model = init_cell_model(config, str(ckpt), precision='fp32', engine='torch')
    image = next(Path(data).glob('train/*/image.tif'))
    batch = _sample_batch(ref_model, str(image))
    ref, got = _predict(ref_model, batch), _predict(model, batch)
    assert len(ref) > 5 and abs(len(got) - len(ref)) <= max(3, len(ref) // 10)
    best = bbox_overlaps(ref.bboxes, got.bboxes).argmax(dim=1).numpy()
    ious = mask_iou(dense_masks(ref.masks), dense_masks(got.masks)[best])
    assert ious.mean() >= 0.9, ious.mean()
    assert 'trunk-int8.blob' in (Path(f'{ckpt}.openvino') / 'cache.json').read_text()  # one blob for both int8 routes
    scores = {p: evaluate_data_root(config, str(ckpt), data, class_agnostic=True, precision=p,
                                    engine='openvino' if p == 'int8-bf16' else 'torch') for p in ('fp32', 'int8-bf16')}
    change = scores['int8-bf16']['segm_mAP_50_md1000'] - scores['fp32']['segm_mAP_50_md1000']
    assert abs(change) <= 0.03, scores
