# Head experiment: torchvision's maskrcnn_resnet50_fpn_v2 design (Li et al. 2021, "Benchmarking detection
# transfer learning with vision transformers"): FPN and heads with BatchNorm, a 4conv1fc box head, a normalised
# 4-conv mask head and a 2-conv RPN head (torchvision's v2 RPN has no normalisation either).
_base_ = './mask-rcnn_r50_fpn_1xb2-adamw-cosine-50e_hw3.py'

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    neck=dict(norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))
