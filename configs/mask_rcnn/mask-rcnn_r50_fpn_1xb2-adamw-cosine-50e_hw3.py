# Reference recipe 2 and the base of the backbone / head experiments in this folder: Mask R-CNN R50-FPN
# (ImageNet backbone), AdamW lr 1e-4 wd 1e-4, cosine, 50 epochs, batch 2, grad clip 10 (add --amp on a GPU).
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn_cell.py', '../_base_/datasets/hw3_instance.py',
    '../_base_/schedules/adamw-cosine-50e.py', '../_base_/default_runtime.py',
    '../_base_/tta/cell_tta.py'
]

# Best checkpoint by the validation contest AP50 (plus the last 3).
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3, save_best='coco/segm_mAP_50', rule='greater'))
