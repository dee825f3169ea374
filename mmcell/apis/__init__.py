"""mmcell.apis: the inference API every tool and command shares (one model builder: ``init_cell_model``,
also named ``build_inference_model``)."""
from .evaluate import evaluate_data_root
from .inference import (
                        build_inference_model,
                        inference_config,
                        init_cell_model,
                        predict_images,
                        predict_release,
                        predict_submission,
)
from .labels import CellSegmentation, cell_table, label_image, save_labels
from .segment import LabelSaver, segment
from .slide import SlideResult, merge_slide, segment_slide

__all__ = ['init_cell_model', 'build_inference_model', 'inference_config', 'predict_images', 'predict_release',
           'predict_submission', 'CellSegmentation', 'cell_table', 'label_image', 'save_labels', 'LabelSaver',
           'segment', 'SlideResult', 'merge_slide', 'segment_slide', 'evaluate_data_root']
