# CPU schedule by iterations (small data sets of large images seen as random crops): AdamW lr 2e-3 (from
# scratch), linear warm-up over 100 iterations, cosine to 1% over max_iters, gradient clipping at max-norm 10,
# no weight decay on norm layers; validation every val_interval iterations and at the end. The experiment config
# sets the iteration-based checkpoint hook and log processor (default_runtime.py owns default_hooks).
max_iters = 1400
lr = 2e-3
val_interval = 700

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=1e-4),
    clip_grad=dict(max_norm=10, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=lr * 0.01, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
