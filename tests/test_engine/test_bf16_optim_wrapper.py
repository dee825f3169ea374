"""bf16 training on CPU: BF16AutocastOptimWrapper computes convs in bfloat16 and keeps losses/RoIAlign in float32."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test_models'))
from tiny_models import tiny_model_cfg  # noqa: E402

pytest.importorskip('mmcv.ops')


def _train_batch(seed: int = 0) -> dict:
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(3, 128, 128), dtype=np.uint8)
    boxes = np.array([[10, 10, 40, 36], [60, 50, 100, 90], [20, 70, 44, 100]], dtype=np.float32)
    masks = np.zeros((len(boxes), 128, 128), dtype=np.uint8)
    for m, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        m[y1:y2, x1:x2] = 1
        img[:, y1:y2, x1:x2] //= 3  # dark nuclei
    sample = DetDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128), scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(bboxes=torch.from_numpy(boxes), labels=torch.tensor([0, 1, 2]),
                                       masks=BitmapMasks(masks, 128, 128))
    return dict(inputs=[torch.from_numpy(img)], data_samples=[sample])


def _step(model, wrapper, seed: int = 0) -> dict:
    torch.manual_seed(seed)  # the samplers draw the same RoIs in both precisions
    return model.train_step(_train_batch(), wrapper)


def test_bf16_training_step():
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper

    torch.manual_seed(0)
    model32 = MODELS.build(tiny_model_cfg())
    model32.init_weights()
    model16 = copy.deepcopy(model32)
    before = {k: v.clone() for k, v in model16.state_dict().items()}
    model32.train()
    model16.train()
    optim = dict(optimizer=dict(type='SGD', lr=0.01))
    w32 = build_optim_wrapper(model32, dict(type='OptimWrapper', **optim))
    w16 = build_optim_wrapper(model16, dict(type='BF16AutocastOptimWrapper', **optim))
    seen = {}

    def record(name):
        def hook(module, args, out):
            seen.setdefault(name, (out[0] if isinstance(out, (tuple, list)) else out).dtype)
        return hook

    model16.backbone.conv1.register_forward_hook(record('conv1'))
    model16.roi_head.bbox_roi_extractor.register_forward_hook(record('roi'))

    logs32, logs16 = _step(model32, w32), _step(model16, w16)
    assert seen['conv1'] == torch.bfloat16  # computed in bf16 ...
    assert seen['roi'] == torch.float32  # ... but the FPN outputs went back to float32 for mmcv's RoIAlign
    for key in ('loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert logs16[key].dtype == torch.float32 and torch.isfinite(logs16[key]), key
    total32, total16 = float(logs32['loss']), float(logs16['loss'])
    assert abs(total16 - total32) <= 0.1 * total32, (total16, total32)
    after = model16.state_dict()
    assert all(v.dtype == before[k].dtype for k, v in after.items())  # parameters stay float32
    assert not torch.equal(after['backbone.conv1.weight'], before['backbone.conv1.weight'])
    assert w16.state_dict().keys() == w32.state_dict().keys()  # checkpoints / resume as with OptimWrapper
    # a second step does not stack hooks
    _step(model16, w16)
    assert len(model16.neck._forward_hooks) == 1
