# The MoNuSeg CPU recipe for CPUs with native bfloat16 units (lscpu: avx512_bf16 or amx_bf16): bf16 training
# (precision='auto': fp32 elsewhere, one log line says which) and mmcell's differentiable RoIAlign make a step
# 1.88x faster (benchmarks/RESULTS.md, "Training precision: fp32 vs bf16 per step"). The freed time is spent by
# one stated principle: the 1,400-iteration recipe's 30-minute budget buys 1,400 x 1.88 iterations, rounded down to
# 100 (the same schedule shape: warm-up, cosine to 1% over max_iters, validation at half and at the end).
# `tools/misc/monuseg_cpu.sh` picks this config where the CPU has the units. Not yet trained to the end here.
_base_ = './mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py'
precision = 'auto'
max_iters = 2600
val_interval = 1300

fast_roi = dict(type='FastRoIExtractor', fast_training=True)
model = dict(roi_head=dict(bbox_roi_extractor=fast_roi, mask_roi_extractor=fast_roi))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=_base_.lr * 0.01, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
