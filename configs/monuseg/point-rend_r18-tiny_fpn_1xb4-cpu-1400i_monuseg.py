# The CPU recipe with PointRend's mask head (Kirillov et al. 2020; mmdet `point_rend/`): a coarse 7x7 mask per box,
# refined at the most uncertain points from stride-4 features, for finer nucleus outlines than a 28x28 grid.
# Same data, schedule and test settings as the recipe; mmdet's inference (mmcell's fast path is Mask R-CNN only).
_base_ = './mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py'
neck_channels = _base_.model.neck.out_channels

model = dict(
    type='PointRend',
    roi_head=dict(
        type='PointRendRoIHead',
        mask_roi_extractor=dict(type='GenericRoIExtractor', aggregation='concat', out_channels=neck_channels,
                                roi_layer=dict(_delete_=True, type='SimpleRoIAlign', output_size=14),
                                featmap_strides=[4]),
        mask_head=dict(_delete_=True, type='CoarseMaskHead', num_fcs=2, in_channels=neck_channels,
                       conv_out_channels=neck_channels, fc_out_channels=256, num_classes=_base_.num_classes,
                       loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0)),
        point_head=dict(type='MaskPointHead', num_fcs=3, in_channels=neck_channels, fc_channels=neck_channels,
                        num_classes=_base_.num_classes, coarse_pred_each_layer=True,
                        loss_point=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(mask_size=7, num_points=14 * 14, oversample_ratio=3, importance_sample_ratio=0.75)),
    # 3 subdivision steps of 7 -> 56 px masks (nuclei are ~25 network px: mmdet's 5 steps would reach 224 px)
    test_cfg=dict(rcnn=dict(subdivision_steps=3, subdivision_num_points=28 * 28, scale_factor=2)))
