"""mmcell.models: what mmdet lacks for cells.

- ``fast_ops`` / ``fast_mask_rcnn``: fast CPU Mask R-CNN inference (``FastMaskRCNN``, ``FastStandardRoIHead``,
  ``FastRoIExtractor``, ``FastFCNMaskHead``; batched RoIAlign, paste straight to RLE).
- ``tta``: ``CellTTAModel``, test-time augmentation with masks (flips, 90-degree rotations, scales).
- ``tiled``: ``TiledDetector``, sliding-window inference with bounded memory.
- ``fusion``: weighted box fusion and mask voting shared by TTA and ensembles.
"""
from .fast_mask_rcnn import (
    FastFCNMaskHead,
    FastMaskRCNN,
    FastRoIExtractor,
    FastStandardRoIHead,
    fast_inference_model_cfg,
)
from .fast_ops import RLEMasks, multilevel_roi_align, paste_masks_dense, paste_masks_rle, roi_align
from .fusion import fuse_boxes, fuse_instances, vote_masks
from .tiled import TiledDetector
from .tta import CellTTAModel, tta_pipeline_of

__all__ = [
    'FastFCNMaskHead', 'FastMaskRCNN', 'FastRoIExtractor', 'FastStandardRoIHead', 'fast_inference_model_cfg',
    'RLEMasks', 'multilevel_roi_align', 'paste_masks_dense', 'paste_masks_rle', 'roi_align', 'fuse_boxes',
    'fuse_instances', 'vote_masks', 'TiledDetector', 'CellTTAModel', 'tta_pipeline_of'
]
