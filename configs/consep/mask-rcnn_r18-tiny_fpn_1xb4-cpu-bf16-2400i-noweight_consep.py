# The CoNSeP recipe without its rare-class loss weight: the one difference is rare_class_weight = 1.0 (every class
# weighs 1 in the box head's classification loss). The ablation that decides whether the recipe keeps 4.0
# (configs/consep/README.md: the weight stays only if it wins the contest AP50 by the paired difference over the
# grouped CV folds).
_base_ = './mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2400i_consep.py'

rare_class_weight = 1.0
model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(class_weight=[rare_class_weight, 1.0, 1.0, 1.0, 1.0]))))
