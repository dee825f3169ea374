# The MoNuSeg CPU recipe on CPUs with native bfloat16 units (lscpu: avx512_bf16 or amx_bf16), re-sized to the
# 30-minute training budget by the step measured where users run it. Why bf16 and why 2,200 iterations
# (configs/monuseg/README.md, "The default recipe validated"):
# - bf16 wins at equal training time: the protocol's equal-time control (4 organ folds, bf16 at 350 iterations in
#   337 s vs fp32 at 280 in 341 s) gives bf16 +0.037 +- 0.020 AP50 (+0.019 AP, +0.025 AJI), ahead on 4 of 4 folds;
# - 2,500 iterations (the 2,500i parent, sized by a 1.83x step speed-up measured side by side) took ~33 min of
#   training in `monuseg_cpu.sh` on the AMD box (0.79 s per iteration): over budget. 30 min / 0.79 s = 2,278,
#   rounded down to 100 -> 2,200 (the same schedule shape: warm-up, cosine to 1 % over max_iters, validation at
#   half and at the end).
# `tools/misc/monuseg_cpu.sh` picks this config where the CPU has the units.
_base_ = './mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2500i_monuseg.py'
max_iters = 2200
val_interval = 1100

param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=_base_.lr * 0.01, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
