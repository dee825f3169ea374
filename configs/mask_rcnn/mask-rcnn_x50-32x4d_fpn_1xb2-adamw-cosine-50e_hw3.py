# Backbone experiment: ResNeXt-50 32x4d instead of ResNet-50 (ImageNet weights from OpenMMLab, mmdet layout).
_base_ = './mask-rcnn_r50_fpn_1xb2-adamw-cosine-50e_hw3.py'

pretrained = 'https://download.openmmlab.com/pretrain/third_party/resnext50-32x4d-0ab1a123.pth'
model = dict(
    backbone=dict(type='ResNeXt', depth=50, groups=32, base_width=4,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
