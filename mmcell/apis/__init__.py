"""mmcell.apis."""
from .inference import init_cell_model, predict_images, predict_release

__all__ = ['init_cell_model', 'predict_images', 'predict_release']
