# Mask R-CNN R50-FPN for nuclei: mmdet's skeleton with 4 classes, small anchors and dense-image test settings.
# HW3 nuclei are ~20x20 px (up to 772 per image): the smallest anchor is 4 px * stride 4 = 16 px at the input
# scale, and up to 1000 detections per image are kept (the contest keeps the best 100 per image AND class).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

num_classes = 4
# ImageNet weights through mmengine's http loader (no torchvision); offline runs fail with one line that says
# how to pass a local file, or use a *scratch* config.
pretrained = 'https://download.pytorch.org/models/resnet50-0676ba61.pth'

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    rpn_head=dict(anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=3000, max_per_img=2000)),
    test_cfg=dict(
        rpn=dict(nms_pre=3000, max_per_img=2000),
        rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=1000,
                  mask_thr_binary=0.5)))
