"""mmcell.apis."""
from .inference import init_cell_model, predict_images, predict_release
from .labels import CellSegmentation, cell_table, label_image, save_labels
from .segment import LabelSaver, build_inference_model, segment
from .slide import SlideResult, merge_slide, segment_slide

__all__ = ['init_cell_model', 'predict_images', 'predict_release', 'CellSegmentation', 'cell_table', 'label_image',
           'save_labels', 'LabelSaver', 'build_inference_model', 'segment', 'SlideResult', 'merge_slide',
           'segment_slide']
