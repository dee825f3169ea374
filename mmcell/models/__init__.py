"""mmcell.models: what mmdet lacks for cells (fast CPU Mask R-CNN inference, mask TTA, tiled inference).

- ``fast_ops``: batched RoIAlign / mask pasting / RLE kernels.
- ``fast_mask_rcnn``: ``FastMaskRCNN``, ``FastStandardRoIHead``, ``FastRoIExtractor``, ``FastFCNMaskHead``.
"""
from .fast_mask_rcnn import (
    FastFCNMaskHead,
    FastMaskRCNN,
    FastRoIExtractor,
    FastStandardRoIHead,
    fast_inference_model_cfg,
)
from .fast_ops import multilevel_roi_align, paste_masks_dense, paste_masks_rle, roi_align

__all__ = [
    'FastFCNMaskHead', 'FastMaskRCNN', 'FastRoIExtractor', 'FastStandardRoIHead', 'fast_inference_model_cfg',
    'multilevel_roi_align', 'paste_masks_dense', 'paste_masks_rle', 'roi_align'
]
