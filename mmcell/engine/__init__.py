"""mmcell.engine: runner extensions (hooks)."""
from .hooks import BorderFilterHook, boxes_touching_border, filter_border_instances

__all__ = ['BorderFilterHook', 'boxes_touching_border', 'filter_border_instances']
