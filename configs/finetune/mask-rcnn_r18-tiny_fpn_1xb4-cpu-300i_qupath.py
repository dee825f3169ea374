# Fine-tune a trained model on your own QuPath annotations (converted by `to_hw3.py --format qupath`): the MoNuSeg
# CPU recipe's model and pipeline, started from a trained checkpoint (`load_from`), 300 iterations at a quarter of
# the learning rate, classes from OUT/classes.json. `tools/misc/finetune.sh SRC WORK_DIR --from CKPT` converts,
# writes a child of this config with your classes and checkpoint, trains and prints both.
_base_ = '../monuseg/mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py'

# ---- frequently modified parameters ----
data_root = 'data/qupath/'
classes = ('nucleus', )  # finetune.sh sets these from OUT/classes.json (and class_agnostic=False)
num_classes = len(classes)
load_from = None  # the trained checkpoint (finetune.sh --from CKPT); its heads are reused when the class count fits
max_iters = 300
val_interval = 100
lr = 5e-4
# ----------------------------------------
metainfo = dict(classes=classes, palette=None)  # None: mmdet draws a colour per class
model = dict(roi_head=dict(bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)))
# the regions of the export, 20 % held out for validation (seeded); as written here every class is one 'nucleus'
# (class_agnostic): finetune.sh's child config names the export's classes and turns it off
qupath_dataset = dict(data_root=data_root, metainfo=metainfo, class_agnostic=True, val_names=None, val_ratio=0.2)
train_dataloader = dict(dataset=qupath_dataset)
val_dataloader = dict(dataset=qupath_dataset)
# `tools/test.py` scores the held-out regions (a converted QuPath export has no test_release/)
test_dataloader = dict(dataset=dict(_delete_=True, type='CellInstanceDataset', split='val', test_mode=True,
                                    pipeline=_base_.test_pipeline, **qupath_dataset))
test_evaluator = _base_.val_evaluator
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=lr * 0.01, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
