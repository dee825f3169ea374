"""Label images and cell tables: moved to :mod:`mmcell.apis.exporters` (the one home of mmcell's exporters).

Kept so that ``from mmcell.apis.labels import label_image, cell_table, save_labels`` goes on working.
"""
from .exporters import TABLE_COLUMNS, CellSegmentation, cell_table, label_image, save_labels

__all__ = ['TABLE_COLUMNS', 'CellSegmentation', 'cell_table', 'label_image', 'save_labels']
