# MoNuSeg on a CPU: the tiny from-scratch Mask R-CNN on 256 px crops at 1.5x, 1,200 iterations of batch 4
# (~25 min on 2 cores), evaluated on 3 whole held-out tiles. `tools/misc/monuseg_cpu.sh SRC WORK_DIR` runs it all.
_base_ = [
    '../_base_/models/mask-rcnn_r18-tiny_fpn_cell.py', '../_base_/datasets/monuseg_instance.py',
    '../_base_/schedules/adamw-cosine-1200i.py', '../_base_/default_runtime.py'
]
num_classes = 1

model = dict(
    roi_head=dict(bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)),
    # a 256 px crop at 1.5x holds ~40-100 nuclei: sample more positives for the box and mask heads
    train_cfg=dict(rcnn=dict(sampler=dict(num=512, pos_fraction=0.5))),
    # ~300-700 nuclei per 1000 px tile (1500 px at 1.5x)
    # mask threshold 0.4: MoNuSeg outlines sit slightly outside the dark chromatin (val AP 0.354 vs 0.343 at 0.5)
    test_cfg=dict(rpn=dict(nms_pre=4000, max_per_img=2000),
                  rcnn=dict(score_thr=0.05, max_per_img=1000, mask_thr_binary=0.4)))
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=600, max_keep_ckpts=2, save_best='coco/segm_mAP_50_md1000',
                    rule='greater'))
log_processor = dict(by_epoch=False)
