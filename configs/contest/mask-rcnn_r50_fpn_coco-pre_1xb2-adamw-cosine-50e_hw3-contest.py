# The contest recipe behind the strongest public entries (~0.60 AP50 vs ~0.30 for plain Mask R-CNN): COCO
# Mask R-CNN weights, images upscaled to a short side of 800-1000 with 1024 px crops, anchors from 8 px, many
# proposals, up to 1000 detections per image with a near-zero score threshold (the contest keeps the best 100
# per image and class, and a low threshold costs nothing in AP).
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn_cell.py', '../_base_/datasets/hw3_instance_upscale-crop.py',
    '../_base_/schedules/adamw-cosine-50e.py', '../_base_/default_runtime.py',
    '../_base_/tta/cell_tta.py'
]

# ---- frequently modified parameters ----
score_thr = 0.001
roi_nms_iou = 0.5
max_per_img = 1000
mask_thr = 0.5
# ----------------------------------------
model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[2])),  # 2 x stride 4 = 8 px, up to 128 px at stride 64
    train_cfg=dict(rpn_proposal=dict(nms_pre=4000, max_per_img=2000)),
    test_cfg=dict(
        rpn=dict(nms_pre=4000, max_per_img=2000),
        rcnn=dict(score_thr=score_thr, nms=dict(type='nms', iou_threshold=roi_nms_iou), max_per_img=max_per_img,
                  mask_thr_binary=mask_thr)))
# Whole-detector COCO weights (the 80-class heads do not fit 4 classes and are skipped with a warning).
load_from = ('https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_1x_coco/'
             'mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth')
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3, save_best='coco/segm_mAP_50', rule='greater'))
