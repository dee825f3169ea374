# HW3 contest data (MoNuSAC-derived H&E nuclei, 4 classes) in its release layout:
# train/val = a seeded split of train/ (CellInstanceDataset), test = test_release/ (CellTestDataset, no labels).
# ---- frequently modified parameters ----
data_root = 'data/hw3/hw3-data-release/'
img_scale = (1333, 800)  # keep-ratio resize: the median 374x464 image is upscaled to a short side of ~800
# microns per pixel of the network input, for whole slides (`mmcell segment-slide` reads tiles at this resolution
# and skips the resize): MoNuSAC 40x scans (~0.25 um/px) upscaled ~2.1x (374 -> 800 px)
model_mpp = 0.12
batch_size = 2
num_workers = 2
val_ratio = 0.2
split_seed = 0
# ----------------------------------------
dataset_type = 'CellInstanceDataset'
backend_args = None

# Pipeline pieces that child configs reuse (`[*_base_.pre_transform, *_base_.augment, ...]`).
pre_transform = [
    dict(type='LoadCellImage'),
    dict(type='LoadCellAnnotations', with_bbox=True, with_mask=True),
]
# Geometric augmentations run at the native resolution, before the resize: cheaper, and alpha/sigma of the
# elastic warp are in native nucleus pixels (~20 px nuclei).
augment = [
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.5),
    dict(type='ElasticTransform', alpha=30.0, sigma=12.0, prob=0.3),
    dict(type='HEDStainJitter', theta=0.05, bias=0.05, prob=0.5),
]
# 'instances' (original-size boxes and RLE masks) travel to CellCocoMetric, which scores without a json file.
test_pack = dict(type='PackDetInputs',
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'instances'))
train_pipeline = [*pre_transform, *augment, dict(type='Resize', scale=img_scale, keep_ratio=True),
                  dict(type='PackDetInputs')]
test_pipeline = [pre_transform[0], dict(type='Resize', scale=img_scale, keep_ratio=True), test_pack]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        val_ratio=val_ratio,
        seed=split_seed,
        filter_cfg=dict(filter_empty_gt=True),  # degenerate boxes: the dataset's min_instance_size
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=num_workers,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        val_ratio=val_ratio,
        seed=split_seed,
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
# The test loader is the val loader on the release folder (CellTestDataset: contest ids, no labels).
test_dataloader = dict(
    val_dataloader,
    dataset=dict(
        type='CellTestDataset',
        data_root=data_root,
        ids_file='test_image_name_to_ids.json',
        img_dir='test_release',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))

# Contest AP50 (maxDets 100 per image and class), the maxDets-1000 figures and per-class AP; AJI, bPQ, mPQ and PQ
# per class, HoVer-Net's detection / classification F1 and the class confusion of the label image (score >= 0.5).
val_evaluator = [dict(type='CellCocoMetric', metric=['bbox', 'segm'], classwise=True),
                 dict(type='CellPathologyMetric')]
# The hidden test set has no labels: `tools/test.py` writes the Codabench zip (test-results.json) instead.
test_evaluator = dict(type='CellSubmissionMetric')

# `--tta` views: the test resize at 1.0x and 1.25x (the flips, rotations and tta_model: ../tta/cell_tta.py).
# A child that changes the test resize restates this too.
tta_pipeline = [
    pre_transform[0],
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(img_scale[0] * s), int(img_scale[1] * s)), keep_ratio=True)
         for s in (1.0, 1.25)],
        [test_pack]]),
]
