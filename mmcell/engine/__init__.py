"""mmcell.engine: runner extensions (hooks)."""
from .hooks import BorderFilterHook, LoadFromReportHook

__all__ = ['BorderFilterHook', 'LoadFromReportHook']
