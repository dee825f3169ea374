# Reference recipe "adam-5e": Adam lr 5e-4, batch 2 (see the dataset base), 5 epochs at a constant LR,
# validation and a checkpoint every epoch (the checkpoint hook and save_best are in the experiment configs,
# because default_runtime.py owns default_hooks).
max_epochs = 5
lr = 5e-4

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=lr, weight_decay=0.0))
param_scheduler = []  # constant LR, as in the reference
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# `--auto-scale-lr` rescales lr from this batch size (1 GPU x 2 images).
auto_scale_lr = dict(enable=False, base_batch_size=2)
