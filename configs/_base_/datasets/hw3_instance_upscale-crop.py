# HW3 data for the contest recipe: every image is resized to a random short side of 800-1000 px (small images,
# most of the set, are upscaled ~2-3x so ~20 px nuclei become ~50 px), and large results are cropped to 1024 px.
_base_ = './hw3_instance.py'

# ---- frequently modified parameters ----
short_sides = (800, 1000)
test_short_side = 1000
max_long_side = 4000  # large enough that the short side, not the long one, sets the scale
model_mpp = 0.094  # whole slides: ~0.25 um/px scans upscaled ~2.7x (374 -> 1000 px at test time)
crop_size = (1024, 1024)
# ----------------------------------------
train_pipeline = [
    *_base_.pre_transform,
    *_base_.augment,
    dict(type='RandomChoiceResize', scales=[(max_long_side, s) for s in range(short_sides[0], short_sides[1] + 1, 40)],
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, recompute_bbox=True, allow_negative_crop=False),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs'),
]
test_pipeline = [_base_.pre_transform[0], dict(type='Resize', scale=(max_long_side, test_short_side), keep_ratio=True),
                 _base_.test_pack]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
# `--tta` views: this test resize at 1.0x and 1.25x
tta_pipeline = [
    _base_.pre_transform[0],
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(max_long_side * s), int(test_short_side * s)), keep_ratio=True)
         for s in (1.0, 1.25)],
        [_base_.test_pack]]),
]
