# Backbone experiment: ResNet-101 instead of ResNet-50 (torchvision ImageNet weights).
_base_ = './mask-rcnn_r50_fpn_1xb2-adamw-cosine-50e_hw3.py'

pretrained = 'https://download.pytorch.org/models/resnet101-63fe2227.pth'
model = dict(backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
