# Reference recipe "adamw-cosine-50e": AdamW lr 1e-4, weight decay 1e-4, cosine annealing over 50 epochs,
# batch 2 (see the dataset base), gradient clipping at max-norm 10. Best checkpoint by validation contest AP50 is
# set in the experiment configs (default_runtime.py owns default_hooks).
# AMP on GPU: `tools/train.py CONFIG --amp` (mmengine's AmpOptimWrapper needs CUDA, so it is not set here).
max_epochs = 50
lr = 1e-4

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=1e-4),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=0.0, begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

auto_scale_lr = dict(enable=False, base_batch_size=2)
