"""The API every tool and command shares: one model builder, predictions of image files, the contest release
workflow, ``segment`` (images) and ``segment_slide`` (whole slides), scoring labelled tiles, and the grouped
cross-validation that chooses recipe settings."""
from .builder import add_model_args, inference_config, init_cell_model, model_kwargs_of
from .crossval import cross_validate, cv_group_of, organ_folds, organ_of
from .evaluate import evaluate_data_root, evaluate_label_images, evaluate_tiles
from .predict import predict_images
from .release import predict_release, predict_release_ensemble, predict_submission
from .segment import find_images, segment
from .slide import SlideResult, merge_slide, segment_slide

__all__ = ['add_model_args', 'inference_config', 'init_cell_model', 'model_kwargs_of', 'evaluate_data_root',
           'evaluate_tiles', 'evaluate_label_images', 'cross_validate', 'cv_group_of', 'organ_folds', 'organ_of',
           'predict_images', 'predict_release', 'predict_release_ensemble', 'predict_submission', 'find_images',
           'segment', 'SlideResult', 'merge_slide', 'segment_slide']
