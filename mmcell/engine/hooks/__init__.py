"""Hooks registered into mmdet HOOKS."""
from .border_filter import BorderFilterHook
from .load_report import LoadFromReportHook

__all__ = ['BorderFilterHook', 'LoadFromReportHook']
