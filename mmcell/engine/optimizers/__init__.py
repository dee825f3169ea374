"""Optimizer wrappers registered into mmengine's OPTIM_WRAPPERS."""
from .bf16_optim_wrapper import BF16AutocastOptimWrapper

__all__ = ['BF16AutocastOptimWrapper']
