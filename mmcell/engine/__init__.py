"""mmcell.engine: runner extensions (hooks, the CPU bfloat16 optimizer wrapper)."""
from .hooks import BorderFilterHook, LoadFromReportHook
from .optimizers import BF16AutocastOptimWrapper

__all__ = ['BorderFilterHook', 'LoadFromReportHook', 'BF16AutocastOptimWrapper']
