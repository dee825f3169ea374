"""The repo's Mask R-CNN model config trains a step and predicts masks on CPU."""
import os.path as osp

import pytest
import torch

pytest.importorskip('mmcv.ops')

from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.slow
def test_mask_rcnn_train_step_and_predict_on_cpu():
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/models/mask-rcnn_r50_fpn_cell.py'))
    cfg.model.backbone.init_cfg = None  # no download in tests
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))

    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 128, 160), (3, 96, 128)], num_items=[5, 3],
                          num_classes=4, with_mask=True)
    model.train()
    before = [p.detach().clone() for p in model.roi_head.mask_head.parameters()]
    losses = model.train_step(data, optim)
    assert {'loss_rpn_cls', 'loss_cls', 'loss_mask'} <= set(losses)
    assert all(torch.isfinite(v).all() for v in losses.values())
    changed = [not torch.equal(a, b) for a, b in zip(before, model.roi_head.mask_head.parameters())]
    assert any(changed), 'the optimizer step did not update the mask head'

    model.eval()
    # Random weights score every proposal alike, so the config's 1,000-detection cap would run the R50 mask head on
    # 2 x 1,000 RoIs (~30 s on one core); 100 detections exercise the same path (the cap itself is the trained
    # model's and the fast path's business: tests/test_models, tests/test_apis).
    model.test_cfg.rcnn.max_per_img = 100
    with torch.no_grad():
        preds = model.test_step(data)
    assert len(preds) == 2
    for pred, shape in zip(preds, [(128, 160), (96, 128)]):
        inst = pred.pred_instances
        assert inst.masks.shape[1:] == shape  # masks are pasted at the original image size
        assert 0 < len(inst.bboxes) == len(inst.scores) == len(inst.labels) == len(inst.masks) <= 100
        assert all(0 <= int(label) < 4 for label in inst.labels)
