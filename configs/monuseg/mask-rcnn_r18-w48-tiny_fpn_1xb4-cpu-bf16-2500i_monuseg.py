# The bf16 CPU recipe with the zoo's wider backbone and neck (the diff of
# mask-rcnn_r18-w48-tiny_fpn_1xb4-cpu-1400i_monuseg.py on the recipe that ships where the CPU has bf16 units):
# ResNet-18 at 3/4 width (48 base channels instead of 32, ~2.2x the backbone FLOPs), FPN and mask head at 96
# channels; bf16, mmcell's fast RoIAlign, schedule and test settings as the parent. Screened by the organ-grouped
# protocol at the parent's screening length (configs/monuseg/README.md, "The zoo").
_base_ = './mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2500i_monuseg.py'
width = 48
neck_channels = 96

model = dict(
    backbone=dict(base_channels=width),
    neck=dict(in_channels=[width, width * 2, width * 4, width * 8], out_channels=neck_channels),
    rpn_head=dict(in_channels=neck_channels, feat_channels=neck_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=neck_channels),
        bbox_head=dict(in_channels=neck_channels),
        mask_roi_extractor=dict(out_channels=neck_channels),
        mask_head=dict(in_channels=neck_channels, conv_out_channels=neck_channels)))
