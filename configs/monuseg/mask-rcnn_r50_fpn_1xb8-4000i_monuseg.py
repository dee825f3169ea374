# MoNuSeg for GPU users: the same data, crops, augmentation and split as the CPU recipe, with mmdet's R50-FPN
# Mask R-CNN from ImageNet weights (https), batch 8, 4,000 iterations, AdamW 2e-4. Not trained here (no GPU on the
# dev machines): a documented starting point. `tools/train.py CONFIG --data-root data/monuseg --amp`.
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn_cell.py', '../_base_/datasets/monuseg_instance.py',
    '../_base_/schedules/adamw-cosine-4000i.py', '../_base_/default_runtime.py',
    '../_base_/tta/cell_tta.py'
]
# ---- frequently modified parameters ----
num_classes = 1
batch_size = 8
# ----------------------------------------

model = dict(
    roi_head=dict(bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)),
    test_cfg=dict(rpn=dict(nms_pre=4000)))  # ~300-700 nuclei per 1000 px tile: more proposals before the RPN NMS
train_dataloader = dict(batch_size=batch_size, num_workers=4)
# A checkpoint at every validation (the last 2 kept) and the best by AP50 at maxDets 1000.
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=_base_.val_interval, max_keep_ckpts=2,
                    save_best='coco/segm_mAP_50_md1000', rule='greater'))
log_processor = dict(by_epoch=False)
