# Synthetic HW3-format data (`mmcell.synthetic.hw3.make_synthetic_hw3`): same layout and pipelines as the
# contest data, and its test split has labels (test_gt_coco.json), so `tools/test.py` reports COCO metrics.
_base_ = './hw3_instance.py'

# ---- frequently modified parameters ----
data_root = 'data/synthetic/'
model_mpp = 0.25  # synthetic images are drawn as 0.25 um/px scans (as make_synthetic_slide.py writes them)
# ----------------------------------------
# Base variables are resolved when the base is read, so the dicts that use data_root are restated here.
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
test_evaluator = [
    dict(type='CellCocoMetric', ann_file=data_root + 'test_gt_coco.json', metric=['bbox', 'segm'], classwise=True),
    dict(type='CellPathologyMetric', ann_file=data_root + 'test_gt_coco.json')]
