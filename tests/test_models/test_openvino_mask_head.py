"""The OpenVINO int8 mask head of the int8 routes (``--engine openvino --precision int8`` / ``int8-bf16``).

Without NNCF: the engine dispatch in ``FastFCNMaskHead`` (and that training / new weights drop it), and the exported
head (float32 IR) against mmdet's ``FCNMaskHead.forward`` on channels_last RoI features. With NNCF: on the suite's
trained quickstart model, ``tools/misc/quantize.py`` quantises trunk and mask head; the int8 head's 28x28 masks and
the route's pasted masks against torch fp32, AP50, and the cache: reused, a damaged blob rebuilt, a damaged, stale
or missing quantised head one line and the torch head.
"""
from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmcv.ops')

from mmcell.models import openvino_trunk  # noqa: E402
from mmcell.utils.checkpoint import detector_of  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import build, dense_masks, make_sample_batch, mask_iou, tiny_model_cfg  # noqa: E402

needs_openvino = pytest.mark.skipif(openvino_trunk.openvino_version() is None, reason='OpenVINO is not installed')


def _predict(model, batch):
    with torch.no_grad():
        return model.test_step(copy.deepcopy(batch))[0].pred_instances


def _rle_masks(inst) -> list:
    return list(inst.masks)


class _Doubled:
    """A stand-in engine: the torch head's logits, counted."""

    def __init__(self, head):
        self.head, self.calls = head, 0

    def __call__(self, x):
        self.calls += 1
        from mmdet.models.roi_heads.mask_heads import FCNMaskHead

        return FCNMaskHead.forward(self.head, x.contiguous())


def test_mask_head_engine_dispatch_and_drop():
    """An installed engine replaces the torch mask head in CPU inference only; ``None`` gives the torch route bit for
    bit; ``train()`` and ``load_state_dict`` drop it (a compiled head holds the weights it was built from)."""
    from mmcell.models import fast_inference_model_cfg

    cfg = fast_inference_model_cfg(tiny_model_cfg(), precision='fp32', mask_format='rle')
    model = build(cfg)
    batch = make_sample_batch(160, 192, seed=5)
    ref = _predict(model, batch)
    assert len(ref) > 5
    head = model.roi_head.mask_head
    engine = _Doubled(head)
    openvino_trunk.install_mask_head_engine(model, engine)
    got = _predict(model, batch)
    assert engine.calls == 1
    assert torch.equal(ref.bboxes, got.bboxes)
    assert np.mean(mask_iou(dense_masks(_rle_masks(ref)), dense_masks(_rle_masks(got)))) >= 0.99
    openvino_trunk.install_mask_head_engine(model, None)
    again = _predict(model, batch)
    assert torch.equal(ref.bboxes, again.bboxes) and _rle_masks(ref) == _rle_masks(again)
    openvino_trunk.install_mask_head_engine(model, engine)
    model.train()
    assert '_mask_engine' not in head.__dict__
    model.eval()
    openvino_trunk.install_mask_head_engine(model, engine)
    model.load_state_dict(model.state_dict())
    assert '_mask_engine' not in head.__dict__


@needs_openvino
def test_exported_mask_head_matches_torch():
    """The float32 IR of the mask head (conv tower, deconv, logits) on channels_last RoI features (as mmcell's
    RoIAlign writes them, read as NHWC without a copy) gives mmdet's logits to float rounding; 0 RoIs give 0 rows."""
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead

    from mmcell.models import fast_inference_model_cfg

    model = build(fast_inference_model_cfg(tiny_model_cfg(), precision='fp32'))
    ir = openvino_trunk.export_mask_head(model)
    engine = openvino_trunk.OpenVINOMaskHead(ir, 'fp32')
    torch.manual_seed(1)
    x = torch.randn(37, model.roi_head.mask_head.in_channels, 14, 14).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = FCNMaskHead.forward(model.roi_head.mask_head, x.contiguous())
    got = engine(x)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))
    assert tuple(engine(x[:0]).shape) == (0, *ref.shape[1:])
    with pytest.raises(openvino_trunk.EngineError, match='^engine openvino: Foo has no mask head to convert$'):
        openvino_trunk.export_mask_head(type('Foo', (torch.nn.Module, ), {})())


def _sample_batch(model, image: str) -> dict:
    from mmcell.apis.builder import build_test_pipeline

    data = build_test_pipeline(model.cfg)(dict(img_path=image, img_id=0))
    return dict(inputs=[data['inputs']], data_samples=[data['data_samples']])


def _listen(lines: list):
    """``lines`` emptied, then filled with the messages of mmengine's current logger (it propagates nothing: listen
    on it directly; a Runner, e.g. ``evaluate_data_root``'s, makes a new current logger) until the returned
    function is called."""
    import logging

    from mmengine.logging import MMLogger

    lines.clear()

    class Grab(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger, handler = MMLogger.get_current_instance(), Grab()
    logger.addHandler(handler)
    return lambda: logger.removeHandler(handler)


def int8_mask_head_checks(config: str, ckpt: str, data: str) -> dict:
    """Quantise ``ckpt`` on ``data`` (trunk and mask head), then: the int8 head's 28x28 masks vs the torch fp32
    head's on the same RoI features, the int8-bf16 route's pasted masks vs torch fp32, AP50 of both, and what the
    cache does when its mask-head files are damaged, stale or missing. Runs in a child process (see below)."""
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead
    from mmdet.structures.bbox import bbox_overlaps

    from mmcell.apis import init_cell_model
    from mmcell.apis.evaluate import evaluate_data_root
    from tests.conftest import load_script

    lines: list = []
    out: dict = {}
    load_script('tools/misc/quantize.py').quantize(config, ckpt, data, subset=6)
    cache = Path(f'{ckpt}.openvino')
    manifest = json.loads((cache / 'cache.json').read_text())
    out['files'] = sorted(manifest['files'])
    out['parts'] = manifest.get('parts')

    image = str(sorted(Path(data).glob('train/*/image.tif'))[0])
    ref_model = init_cell_model(config, ckpt, precision='fp32', engine='torch')
    batch = _sample_batch(ref_model, image)
    ref = _predict(ref_model, batch)
    model = init_cell_model(config, ckpt, precision='int8-bf16', engine='openvino')
    det = detector_of(model)
    engine = det.roi_head.mask_head.__dict__.get('_mask_engine')
    out['engine'] = type(engine).__name__
    seen = []
    hook = det.roi_head.mask_head.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    got = _predict(model, batch)
    hook.remove()
    feats = seen[0]
    with torch.no_grad():
        head_ref = FCNMaskHead.forward(detector_of(ref_model).roi_head.mask_head, feats.contiguous()).sigmoid() > .5
    head_int8 = engine(feats).sigmoid() > 0.5
    out['head_iou'] = float(mask_iou(head_ref.flatten(0, 1).numpy(), head_int8.flatten(0, 1).numpy()).mean())
    best = bbox_overlaps(ref.bboxes, got.bboxes).argmax(dim=1).numpy()
    out['dets'] = [len(ref), len(got)]
    out['iou'] = float(mask_iou(dense_masks(_rle_masks(ref)), dense_masks(_rle_masks(got))[best]).mean())
    first = _rle_masks(got)

    def run() -> tuple:
        stop = _listen(lines)
        m = init_cell_model(config, ckpt, precision='int8-bf16', engine='openvino')
        pred = _predict(m, batch)
        stop()
        e = detector_of(m).roi_head.mask_head.__dict__.get('_mask_engine')
        return type(e).__name__, _rle_masks(pred) == first, [ln for ln in lines if 'engine cache' in ln]

    out['reused'] = run()
    blob = cache / 'mask_head-int8.blob'
    blob.write_bytes(blob.read_bytes()[:500])
    out['damaged_blob'] = run()
    out['blob_rewritten'] = blob.stat().st_size > 500
    saved = (cache / 'cache.json').read_text()
    manifest = json.loads(saved)
    manifest['parts']['mask_head']['architecture'] = '0' * 64
    (cache / 'cache.json').write_text(json.dumps(manifest))
    out['stale'] = run()
    (cache / 'cache.json').write_text(saved)
    xml = cache / 'mask_head-int8.xml'
    good = xml.read_bytes()
    xml.write_bytes(good[:200])
    out['damaged_ir'] = run()
    xml.write_bytes(good)
    manifest = json.loads(saved)
    for name in [n for n in manifest['files'] if n.startswith('mask_head')]:
        manifest['files'].pop(name)
    manifest.pop('parts', None)
    (cache / 'cache.json').write_text(json.dumps(manifest))  # a cache from before mmcell quantised the mask head
    out['missing'] = run()
    (cache / 'cache.json').write_text(saved)
    out['ap50'] = {p: evaluate_data_root(config, ckpt, data, class_agnostic=True, precision=p,
                                         engine='torch' if p == 'fp32' else 'openvino')['segm_mAP_50_md1000']
                   for p in ('fp32', 'int8', 'int8-bf16')}
    return out


@needs_openvino
def test_int8_mask_head_on_the_trained_model(trained_quickstart, tmp_path):
    """The quantised mask head on the trained quickstart model: its masks near torch fp32's, AP50 within 0.03, the
    cache's mask-head files reused, rebuilt (a damaged blob) or replaced by the torch head with one line (a damaged
    IR, a stale head, a cache without one).

    Runs in a child process, as ``test_openvino_int8_bf16.py`` does (NNCF and OpenVINO int8 in the pytest process
    preceded a silent crash of a later slide test)."""
    pytest.importorskip('nncf')
    from tests.conftest import run_in_child

    ckpt = tmp_path / 'model.pth'  # the engine cache goes beside it: not into the shared fixture
    shutil.copy(trained_quickstart.checkpoint, ckpt)
    got = run_in_child('tests.test_models.test_openvino_mask_head', 'int8_mask_head_checks',
                       trained_quickstart.config, str(ckpt), trained_quickstart.data_root)
    print({k: got[k] for k in ('head_iou', 'iou', 'dets', 'ap50')})  # the figures, for pytest -s
    cache = Path(f'{ckpt}.openvino')
    assert {'trunk-int8.xml', 'trunk-int8.bin', 'mask_head-int8.xml', 'mask_head-int8.bin'} <= set(got['files'])
    assert got['parts']['mask_head']['format'] == openvino_trunk.MASK_HEAD_FORMAT
    assert got['engine'] == 'OpenVINOMaskHead'
    assert got['head_iou'] >= 0.95, got  # 28x28 masks of the same RoI features
    n_ref, n_got = got['dets']
    assert n_ref > 5 and abs(n_got - n_ref) <= max(3, n_ref // 10)
    assert got['iou'] >= 0.9, got
    for p in ('int8', 'int8-bf16'):
        assert abs(got['ap50'][p] - got['ap50']['fp32']) <= 0.03, got
    assert got['reused'] == ['OpenVINOMaskHead', True, []]
    assert got['damaged_blob'] == ['OpenVINOMaskHead', True, [
        f'engine cache {cache / "mask_head-int8.blob"}: damaged (digest differs); rebuilding it']]
    assert got['blob_rewritten']
    torch_head = 'the mask head runs in torch bf16'
    xml = cache / 'mask_head-int8.xml'
    assert got['stale'][0] == 'NoneType' and got['stale'][2] == [
        f'engine cache {xml}: int8 mask head stale (the mask head changed since tools/misc/quantize.py; run it '
        f'again); {torch_head}']
    assert got['damaged_ir'][0] == 'NoneType'
    assert got['damaged_ir'][2] == [f'engine cache {xml}: damaged (digest differs); rebuilding it',
                                    f'engine cache {xml}: int8 mask head damaged (run tools/misc/quantize.py again); '
                                    f'{torch_head}']
    assert got['missing'][0] == 'NoneType' and got['missing'][2] == [
        f'engine cache {xml}: int8 mask head none quantised (a cache from before mmcell quantised it; '
        f'tools/misc/quantize.py makes it); {torch_head}']
