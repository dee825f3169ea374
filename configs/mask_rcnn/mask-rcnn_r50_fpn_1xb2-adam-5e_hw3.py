# Reference recipe 1: Mask R-CNN R50-FPN (ImageNet backbone), Adam lr 5e-4, batch 2, 5 epochs.
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn_cell.py', '../_base_/datasets/hw3_instance.py',
    '../_base_/schedules/adam-5e.py', '../_base_/default_runtime.py',
    '../_base_/tta/cell_tta.py'
]

# A checkpoint every epoch (all 5 kept) and the best one by the contest AP50.
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1, save_best='coco/segm_mAP_50', rule='greater'))
