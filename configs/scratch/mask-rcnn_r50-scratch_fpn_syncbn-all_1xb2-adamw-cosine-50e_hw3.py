# From scratch with SyncBN (multi-GPU: statistics over all GPUs' images; on one process mmengine reverts it to BN).
_base_ = './mask-rcnn_r50-scratch_fpn_gn-all_1xb2-adamw-cosine-50e_hw3.py'

norm_cfg = dict(_delete_=True, type='SyncBN', requires_grad=True)  # replaces GN's dict
model = dict(
    backbone=dict(norm_cfg=norm_cfg),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(bbox_head=dict(norm_cfg=norm_cfg), mask_head=dict(norm_cfg=norm_cfg)))
