"""mmcell.apis."""
from .evaluate import evaluate_data_root
from .inference import init_cell_model, predict_images, predict_release
from .labels import CellSegmentation, cell_table, label_image, save_labels
from .segment import LabelSaver, build_inference_model, segment

__all__ = ['init_cell_model', 'predict_images', 'predict_release', 'CellSegmentation', 'cell_table', 'label_image',
           'save_labels', 'LabelSaver', 'build_inference_model', 'segment', 'evaluate_data_root']
