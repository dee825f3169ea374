"""Data structures shared by every floor above: RLE, label images, the tile layout."""
from .label_image import instance_label_map, instances_to_label_map, label_image, paint_instances
from .rle import (
    crop_rle,
    encode_mask,
    masks_to_bool,
    masks_to_rles,
    rle_bytes,
    rle_counts,
    rle_runs,
    rle_text,
    rles_to_bitmaps,
    runs_to_rle,
)
from .tiling import in_core, tile_cores, tile_starts

__all__ = ['label_image', 'instance_label_map', 'instances_to_label_map', 'paint_instances', 'crop_rle',
           'encode_mask', 'masks_to_bool', 'masks_to_rles', 'rle_bytes', 'rle_counts', 'rle_runs', 'rle_text',
           'rles_to_bitmaps', 'runs_to_rle', 'in_core', 'tile_cores', 'tile_starts']
