"""mmcell: MMDetection 3 project for cell (nucleus) instance segmentation.

Importing the package applies the compatibility shims (``mmcell.utils.compat``) and registers every mmcell
module into the mmdet registries; configs load it with ``custom_imports=dict(imports=['mmcell'])``.
"""
from .utils.compat import apply_compat
from .version import __version__

apply_compat()

from . import datasets, engine, evaluation, models  # noqa: E402,F401  (registration side effects)

__all__ = ['__version__']
