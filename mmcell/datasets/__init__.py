"""HW3 cell data: format parser, data sets, synthetic generator and pipeline transforms."""
from .analysis import dataset_statistics, draw_gt_contours
from .hw3_dataset import CellInstanceDataset, CellTestDataset
from .hw3_format import HW3FormatError
from .metainfo import CELL_METAINFO, CLASSES, NUM_CLASSES, PALETTE
from .slide import SlideError, SlideReader, SlideTileDataset, tissue_mask
from .synthetic import make_synthetic_hw3
from .synthetic_slide import write_synthetic_slide
from .transforms import *  # noqa: F401,F403

__all__ = ['CELL_METAINFO', 'CLASSES', 'NUM_CLASSES', 'PALETTE',
           'CellInstanceDataset', 'CellTestDataset', 'HW3FormatError', 'make_synthetic_hw3',
           'dataset_statistics', 'draw_gt_contours', 'SlideError', 'SlideReader', 'SlideTileDataset', 'tissue_mask',
           'write_synthetic_slide']
