"""Whole slides in, QuPath-ready cells out: the orchestration (``run``), tile records and the resumable work
folder (``records``), the merge (``merge``), and the whole-image reference of the seam tests (``reference``)."""
from mmcell.apis.slide.records import SlideResult
from mmcell.apis.slide.run import segment_slide

from .merge import merge_slide

__all__ = ['SlideResult', 'merge_slide', 'segment_slide']
