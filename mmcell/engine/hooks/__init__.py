"""Hooks registered into mmdet HOOKS."""
from .border_filter import BorderFilterHook, boxes_touching_border, filter_border_instances

__all__ = ['BorderFilterHook', 'boxes_touching_border', 'filter_border_instances']
