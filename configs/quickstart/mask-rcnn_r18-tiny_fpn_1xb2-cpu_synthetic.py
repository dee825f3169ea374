# CPU quickstart: a small Mask R-CNN trained from scratch on the synthetic HW3 set in minutes on 2 cores
# (`make demo`). ResNet-18 at half width, GroupNorm (batch 2, no pretrained statistics), a 4-level FPN, light
# heads, native-resolution images (the demo draws 128-320 px images; nuclei are 6-30 px).
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn_cell.py', '../_base_/datasets/synthetic_instance.py',
    '../_base_/default_runtime.py'
]

# ---- frequently modified parameters ----
data_root = 'data/synthetic/'
batch_size = 2
num_workers = 1
max_epochs = 24  # the calibrated synthetic data (crowded, textured) need more than 16
lr = 2e-3
width = 32  # base channels of the backbone (64 for a standard ResNet-18)
neck_channels = 64
# ----------------------------------------
norm_cfg = dict(type='GN', num_groups=8, requires_grad=True)
strides = [4, 8, 16, 32]  # no stride-64 level: images are small and nuclei at most ~30 px

model = dict(
    backbone=dict(depth=18, base_channels=width, frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False,
                  zero_init_residual=False, init_cfg=None),
    neck=dict(in_channels=[width, width * 2, width * 4, width * 8], out_channels=neck_channels, num_outs=4,
              norm_cfg=norm_cfg),
    rpn_head=dict(in_channels=neck_channels, feat_channels=neck_channels,
                  anchor_generator=dict(scales=[2], strides=strides)),  # anchors 8, 16, 32, 64 px
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=neck_channels, featmap_strides=strides),
        # Macrophages and neutrophils are ~3% and ~2% of the nuclei: up-weight them in the classification loss
        # (weights of the 4 classes, then background) or a short run never learns them.
        bbox_head=dict(in_channels=neck_channels, fc_out_channels=256,
                       loss_cls=dict(class_weight=[1.0, 1.0, 4.0, 4.0, 1.0])),
        mask_roi_extractor=dict(out_channels=neck_channels, featmap_strides=strides),
        mask_head=dict(num_convs=2, in_channels=neck_channels, conv_out_channels=neck_channels, norm_cfg=norm_cfg)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=256))),
    test_cfg=dict(
        rpn=dict(nms_pre=2000, max_per_img=1500),
        rcnn=dict(score_thr=0.01, max_per_img=1000)))  # room for a real 40x 1000x1000 tile (~400-700 nuclei)

# Native resolution: Resize by 1.0 only records scale_factor for the test-time rescale.
train_pipeline = [
    dict(type='LoadCellImage'),
    dict(type='LoadCellAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.5),
    dict(type='HEDStainJitter', theta=0.05, bias=0.05, prob=0.5),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadCellImage'),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'instances')),
]
train_dataloader = dict(batch_size=batch_size, num_workers=num_workers,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=num_workers, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(num_workers=num_workers, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_evaluator = dict(ann_file=data_root + 'test_gt_coco.json')
# `tools/test.py --tta`: native scale and 1.5x (flips and rotations come from the inherited tta_model)
tta_pipeline = [
    dict(type='LoadCellImage'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=1.0, keep_ratio=True), dict(type='Resize', scale_factor=1.5, keep_ratio=True)],
        [test_pipeline[-1]]]),
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=1e-4),
    clip_grad=dict(max_norm=10, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=lr * 0.01, begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=4)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=4, max_keep_ckpts=2, save_best='coco/segm_mAP_50', rule='greater'))
