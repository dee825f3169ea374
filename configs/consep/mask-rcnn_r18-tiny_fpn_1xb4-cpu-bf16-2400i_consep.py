# CoNSeP on a CPU, 4 classes (other, inflammatory, epithelial, spindle): the MoNuSeg bf16 CPU recipe as a diff.
# CoNSeP is 40x H&E at ~0.25 um/px like MoNuSeg, so the same 1.25x training and test scale (nuclei seen at the size
# they were learnt), the same 256 px network crops (205 px of a 256 px patch), batch 4, the same schedule shape.
# Convert with `to_hw3.py --format consep SRC DATA` (patches `train_<image>_<patch>`);
# `tools/misc/consep_cpu.sh SRC WORK_DIR` runs it. Settings are compared by CV grouped by source image
# (tools/misc/consep_cv.sh, configs/consep/README.md), never on the 2 val images.
_base_ = '../monuseg/mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2500i_monuseg.py'

data_root = 'data/consep/'
num_classes = 4
metainfo = dict(classes=('other', 'inflammatory', 'epithelial', 'spindle'),
                palette=[(0, 160, 0), (220, 20, 60), (0, 90, 255), (255, 165, 0)])
# 2 of the 27 source images (32 patches, every class present) for the best-checkpoint choice only
val_names = [f'train_{image}_{patch:03d}' for image in (2, 15) for patch in range(16)]
# "other" is 2.4 % of the nuclei (432 of 18,216). Its classification loss weighed 4 (sqrt of the frequency ratio to
# the median class) until the paired grouped CV (configs/consep/README.md, "Rare-class weight"): without it the
# contest AP50 is +0.013 +- 0.018 higher over the 4 folds (3 of 4; mPQ +0.031, every class but "other" up, "other"
# AP50 -0.034), so by the rule written before the folds ran every class weighs 1. The knob stays (the 4 classes, then
# background): rare_class_weight = 4.0 in a diff gives the earlier recipe back.
rare_class_weight = 1.0
# The 30-minute budget from a measured step: 0.71 s per iteration of this config in the training loop on 2 cores
# (AMD EPYC with avx512_bf16, bf16, one torch thread + one loader as consep_cpu.sh runs it; the mean of 470
# iterations of a CV fold, 2026-12-07; the first 60 iterations, 0.53 s, are faster: few positive RoIs yet);
# 2,400 x 0.71 s = 28.4 min, the 2 validations and a margin in the rest.
max_iters = 2400
val_interval = 1200

model = dict(roi_head=dict(
    bbox_head=dict(num_classes=num_classes,
                   loss_cls=dict(class_weight=[rare_class_weight, 1.0, 1.0, 1.0, 1.0])),
    mask_head=dict(num_classes=num_classes)))
consep_dataset = dict(data_root=data_root, metainfo=metainfo, class_agnostic=False, val_names=val_names)
train_dataloader = dict(dataset=consep_dataset)
val_dataloader = dict(dataset=consep_dataset)
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
# The contest figure: class-aware segm AP50 at maxDets 100 (Codabench) picks the best checkpoint
val_evaluator = [dict(type='CellCocoMetric', metric=['bbox', 'segm'], classwise=True),
                 dict(type='CellPathologyMetric')]
test_evaluator = [dict(type='CellCocoMetric', metric=['bbox', 'segm'], classwise=True,
                       ann_file=data_root + 'test_gt_coco.json'),
                  dict(type='CellPathologyMetric', ann_file=data_root + 'test_gt_coco.json')]
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=_base_.lr * 0.01, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval, save_best='coco/segm_mAP_50'))
