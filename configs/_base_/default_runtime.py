# Runtime shared by every mmcell config: mmdet's defaults + mmcell's modules.
_base_ = 'mmdet::_base_/default_runtime.py'

default_scope = 'mmdet'
custom_imports = dict(imports=['mmcell'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
# nccl on GPU machines; tools/train.py switches to gloo (and CPU DDP) where CUDA is absent.
env_cfg = dict(dist_cfg=dict(backend='nccl'))
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)
