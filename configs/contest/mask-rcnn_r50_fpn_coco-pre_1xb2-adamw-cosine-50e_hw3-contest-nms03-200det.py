# The other public reference: the contest recipe with ROI NMS at IoU 0.3 and at most 200 detections per image.
_base_ = './mask-rcnn_r50_fpn_coco-pre_1xb2-adamw-cosine-50e_hw3-contest.py'

model = dict(test_cfg=dict(rcnn=dict(nms=dict(iou_threshold=0.3), max_per_img=200)))
