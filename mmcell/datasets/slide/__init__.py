"""Whole-slide images: the reader, the tissue mask, the tile layout and the tile dataset of DataLoader workers."""
from .reader import SLIDE_SUFFIXES, THUMBNAIL_SIDE, SlideError, SlideReader, slide_stem
from .tile_dataset import SlideTileDataset, collate_tiles, die_with_parent, worker_count
from .tiling import SlideTiling, plan_tiles, read_tile
from .tissue import TissueMask, tissue_mask

__all__ = ['SLIDE_SUFFIXES', 'THUMBNAIL_SIDE', 'SlideError', 'SlideReader', 'slide_stem', 'SlideTileDataset',
           'collate_tiles', 'die_with_parent', 'worker_count', 'SlideTiling', 'plan_tiles', 'read_tile',
           'TissueMask', 'tissue_mask']
