# The CPU recipe as a Cascade Mask R-CNN (Cai & Vasconcelos 2018; mmdet `cascade_rcnn/`): three box stages trained
# at IoU 0.5 / 0.6 / 0.7, the mask head on every stage, for tighter boxes round touching nuclei.
# Same data, schedule and test settings as the recipe; mmdet's inference (mmcell's fast path is Mask R-CNN only).
_base_ = './mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py'
neck_channels = _base_.model.neck.out_channels
stage_stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
stage_ious = (0.5, 0.6, 0.7)

model = dict(
    type='CascadeRCNN',
    roi_head=dict(
        _delete_=True,
        type='CascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_roi_extractor=_base_.model.roi_head.bbox_roi_extractor,
        bbox_head=[
            dict(type='Shared2FCBBoxHead', in_channels=neck_channels, fc_out_channels=256, roi_feat_size=7,
                 num_classes=_base_.num_classes, reg_class_agnostic=True,
                 bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=stds),
                 loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                 loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0)) for stds in stage_stds],
        mask_roi_extractor=_base_.model.roi_head.mask_roi_extractor,
        mask_head=_base_.model.roi_head.mask_head),
    train_cfg=dict(rcnn=[
        dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                           match_low_quality=False, ignore_iof_thr=-1),
             sampler=dict(type='RandomSampler', num=256, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
             mask_size=28, pos_weight=-1, debug=False) for iou in stage_ious]))
