# GPU schedule by iterations: adamw-cosine-1400i.py for a pretrained backbone at batch 8 (the R50 MoNuSeg recipe):
# AdamW lr 2e-4 (10x lower: ImageNet weights, not scratch), linear warm-up over 200 iterations, cosine to 1% over
# 4,000 iterations, validation every 1,000; weight decay, gradient clipping and norm-layer decay as in the base.
_base_ = './adamw-cosine-1400i.py'

max_iters = 4000
lr = 2e-4
val_interval = 1000

# Base variables are resolved when the base is read, so the dicts that use them are restated here.
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=lr * 0.01, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
