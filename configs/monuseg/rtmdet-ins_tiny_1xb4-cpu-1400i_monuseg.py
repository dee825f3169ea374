# RTMDet-Ins-tiny (Lyu et al. 2022; mmdet `rtmdet/rtmdet-ins_tiny_*`) on the CPU recipe's data and schedule: a
# one-stage instance segmenter (CSPNeXt-tiny, PAFPN, dynamic mask kernels), from scratch with BatchNorm as upstream
# (CSPNeXt-tiny's 12- and 6-channel layers do not split into GroupNorm groups), points at strides 8-32. mmdet's own
# data pipeline (mosaic, mixup) is not used: the recipe's crops are.
_base_ = './mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py'
norm_cfg = dict(type='BN', requires_grad=True)
act_cfg = dict(type='SiLU', inplace=True)
channels = 96

model = dict(
    _delete_=True,
    type='RTMDet',
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=dict(type='CSPNeXt', arch='P5', expand_ratio=0.5, deepen_factor=0.167, widen_factor=0.375,
                  channel_attention=True, norm_cfg=norm_cfg, act_cfg=act_cfg),
    neck=dict(type='CSPNeXtPAFPN', in_channels=[96, 192, 384], out_channels=channels, num_csp_blocks=1,
              expand_ratio=0.5, norm_cfg=norm_cfg, act_cfg=act_cfg),
    bbox_head=dict(
        type='RTMDetInsSepBNHead', num_classes=_base_.num_classes, in_channels=channels, feat_channels=channels,
        stacked_convs=2, share_conv=True, pred_kernel_size=1, norm_cfg=norm_cfg, act_cfg=act_cfg,
        anchor_generator=dict(type='MlvlPointGenerator', offset=0, strides=[8, 16, 32]),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_mask=dict(type='DiceLoss', loss_weight=2.0, eps=5e-6, reduction='mean')),
    train_cfg=dict(assigner=dict(type='DynamicSoftLabelAssigner', topk=13), allowed_border=-1, pos_weight=-1,
                   debug=False),
    # dense tiles: up to 1,000 nuclei (mask_thr_binary as the recipe's)
    test_cfg=dict(nms_pre=4000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=1000, mask_thr_binary=0.4))
