# A small Mask R-CNN that trains from scratch on a CPU in minutes: ResNet-18 at half width, GroupNorm (small
# batches, no pretrained statistics), a 4-level FPN (no stride-64 level: nuclei are at most ~60 px at the input
# scale), light heads, anchors of 8-64 px. Used by the quickstart and the MoNuSeg CPU recipe.
_base_ = './mask-rcnn_r50_fpn_cell.py'

width = 32  # base channels of the backbone (64 for a standard ResNet-18)
neck_channels = 64
norm_cfg = dict(type='GN', num_groups=8, requires_grad=True)
strides = [4, 8, 16, 32]

model = dict(
    backbone=dict(depth=18, base_channels=width, frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False,
                  zero_init_residual=False, init_cfg=None),
    neck=dict(in_channels=[width, width * 2, width * 4, width * 8], out_channels=neck_channels, num_outs=4,
              norm_cfg=norm_cfg),
    rpn_head=dict(in_channels=neck_channels, feat_channels=neck_channels,
                  anchor_generator=dict(scales=[2], strides=strides)),  # anchors 8, 16, 32, 64 px
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=neck_channels, featmap_strides=strides),
        bbox_head=dict(in_channels=neck_channels, fc_out_channels=256),
        mask_roi_extractor=dict(out_channels=neck_channels, featmap_strides=strides),
        mask_head=dict(num_convs=2, in_channels=neck_channels, conv_out_channels=neck_channels, norm_cfg=norm_cfg)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=256))))
