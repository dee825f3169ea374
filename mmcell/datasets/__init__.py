"""Data in: the one image reader, the HW3 format and data set classes, converters of public sets, whole-slide
reading and tiling, statistics of a data set, and the pipeline transforms."""
from .hw3_dataset import CellInstanceDataset, CellTestDataset
from .image_io import read_image, to_rgb_uint8
from .metainfo import CELL_METAINFO, CLASSES, NUM_CLASSES, PALETTE
from .slide import SlideError, SlideReader, SlideTileDataset, tissue_mask
from .statistics import dataset_statistics
from .transforms import *  # noqa: F401,F403  (registration side effects)

__all__ = ['CELL_METAINFO', 'CLASSES', 'NUM_CLASSES', 'PALETTE', 'CellInstanceDataset', 'CellTestDataset',
           'read_image', 'to_rgb_uint8', 'SlideError', 'SlideReader', 'SlideTileDataset', 'tissue_mask',
           'dataset_statistics']
