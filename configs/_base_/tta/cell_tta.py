# Test-time augmentation for `tools/test.py --tta`, `tools/predict.py --tta` and `mmcell segment --tta`
# (mmcell.models.CellTTAModel; mmdet's DetTTAModel has no masks). The model flips (none / horizontal / vertical)
# and rotates (0 / 90 degrees) the image tensors itself; the image scales come from the dataset base's
# `tta_pipeline` (its test resize at 1.0x and 1.25x), because only the dataset base knows its test resize.
tta_model = dict(type='CellTTAModel', flips=['none', 'horizontal', 'vertical'], rotations=[0, 1])
