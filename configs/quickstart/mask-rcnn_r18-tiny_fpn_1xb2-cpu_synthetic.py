# CPU quickstart: a small Mask R-CNN trained from scratch on the synthetic HW3 set in minutes on 2 cores
# (`make demo`): the tiny model base (ResNet-18 at half width, GroupNorm, 4-level FPN, light heads) at the native
# resolution (the demo draws 128-320 px images; calibrated nuclei are ~13-40 px at 40x).
_base_ = [
    '../_base_/models/mask-rcnn_r18-tiny_fpn_cell.py', '../_base_/datasets/synthetic_instance.py',
    '../_base_/schedules/adamw-cosine-50e.py', '../_base_/default_runtime.py',
    '../_base_/tta/cell_tta.py'
]

# ---- frequently modified parameters ----
data_root = 'data/synthetic/'
batch_size = 2
num_workers = 1
max_epochs = 24  # the calibrated synthetic data (crowded, textured) need more than 16
lr = 2e-3
# ----------------------------------------

model = dict(
    roi_head=dict(
        # Macrophages and neutrophils are ~3% and ~2% of the nuclei: up-weight them in the classification loss
        # (weights of the 4 classes, then background) or a short run never learns them.
        bbox_head=dict(loss_cls=dict(class_weight=[1.0, 1.0, 4.0, 4.0, 1.0]))),
    test_cfg=dict(
        rpn=dict(nms_pre=2000, max_per_img=1500),
        rcnn=dict(score_thr=0.01, max_per_img=1000)))  # room for a real 40x 1000x1000 tile (~400-700 nuclei)

# Native resolution: Resize by 1.0 only records scale_factor for the test-time rescale (no elastic warp: small
# images, short run).
_augment = [t for t in _base_.augment if t['type'] != 'ElasticTransform']
train_pipeline = [*_base_.pre_transform, *_augment, dict(type='Resize', scale_factor=1.0, keep_ratio=True),
                  dict(type='PackDetInputs')]
test_pipeline = [_base_.pre_transform[0], dict(type='Resize', scale_factor=1.0, keep_ratio=True), _base_.test_pack]
train_dataloader = dict(batch_size=batch_size, num_workers=num_workers,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=num_workers, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(num_workers=num_workers, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_evaluator = [dict(m, ann_file=data_root + 'test_gt_coco.json') for m in _base_.test_evaluator]
# `--tta` views: native scale and 1.5x (measured in benchmarks/RESULTS.md; flips, rotations: _base_/tta/cell_tta.py)
tta_pipeline = [
    _base_.pre_transform[0],
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=1.0, keep_ratio=True), dict(type='Resize', scale_factor=1.5, keep_ratio=True)],
        [_base_.test_pack]]),
]

# The adamw-cosine schedule, shortened: a higher LR (2e-3, from scratch) with 100 warm-up iterations, max_epochs
# (24) of cosine to 1%, no weight decay on GroupNorm, validation and a checkpoint every 4 epochs.
optim_wrapper = dict(optimizer=dict(lr=lr), paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=lr * 0.01, begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
default_hooks = dict(checkpoint=dict(interval=4, max_keep_ckpts=2, save_best='coco/segm_mAP_50', rule='greater'))
