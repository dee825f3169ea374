# MoNuSeg on a CPU: the tiny from-scratch Mask R-CNN on 256 px crops at 1.25x, 1,400 iterations of batch 4
# (28.9 min on 2 quiet cores), tested at its training scale (1.25x, `_base_/datasets/monuseg_instance.py`).
# Settings are compared by the organ-grouped cross-validation of `tools/misc/monuseg_cv.sh` (configs/monuseg/README.md).
# `tools/misc/monuseg_cpu.sh SRC WORK_DIR` runs it.
_base_ = [
    '../_base_/models/mask-rcnn_r18-tiny_fpn_cell.py', '../_base_/datasets/monuseg_instance.py',
    '../_base_/schedules/adamw-cosine-1400i.py', '../_base_/default_runtime.py',
    '../_base_/tta/cell_tta.py'
]
num_classes = 1

model = dict(
    roi_head=dict(bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)),
    # ~300-700 nuclei per 1000 px tile
    # mask threshold 0.4: MoNuSeg outlines sit slightly outside the dark chromatin (val AP 0.349 vs 0.331 at 0.5)
    test_cfg=dict(rpn=dict(nms_pre=4000, max_per_img=2000),
                  rcnn=dict(score_thr=0.05, max_per_img=1000, mask_thr_binary=0.4)))
# A checkpoint at every validation (the last 2 kept) and the best by AP50 at maxDets 1000.
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=_base_.val_interval, max_keep_ckpts=2,
                    save_best='coco/segm_mAP_50_md1000', rule='greater'))
log_processor = dict(by_epoch=False)
