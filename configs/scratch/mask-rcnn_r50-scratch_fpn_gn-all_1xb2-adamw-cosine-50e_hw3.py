# No pretrained weights (offline machines): GroupNorm everywhere, as mmdet's scratch configs (He et al. 2019,
# "Rethinking ImageNet pre-training"); GN does not depend on the batch of 2. Expect to need longer schedules.
_base_ = '../mask_rcnn/mask-rcnn_r50_fpn_1xb2-adamw-cosine-50e_hw3.py'

norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(frozen_stages=-1, zero_init_residual=False, norm_cfg=norm_cfg, norm_eval=False, init_cfg=None),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.0))
