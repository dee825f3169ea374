# MoNuSeg for GPU users: the same data, crops, augmentation and split as the CPU recipe, with mmdet's R50-FPN
# Mask R-CNN from ImageNet weights (https), batch 8, 4,000 iterations, AdamW 2e-4. Not trained here (no GPU on the
# dev machines): a documented starting point. `tools/train.py CONFIG --data-root data/monuseg --amp`.
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn_cell.py', '../_base_/datasets/monuseg_instance.py',
    '../_base_/schedules/adamw-cosine-1400i.py', '../_base_/default_runtime.py'
]
num_classes = 1
max_iters = 4000
lr = 2e-4

model = dict(
    roi_head=dict(bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)),
    test_cfg=dict(rpn=dict(nms_pre=4000, max_per_img=2000), rcnn=dict(score_thr=0.05, max_per_img=1000)))
train_dataloader = dict(batch_size=8, num_workers=4)
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=lr * 0.01, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=1000)
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=2, save_best='coco/segm_mAP_50_md1000',
                    rule='greater'))
log_processor = dict(by_epoch=False)
