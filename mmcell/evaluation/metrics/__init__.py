"""Metrics registered into mmdet METRICS."""
from .cell_coco_metric import CellCocoMetric
from .submission_metric import CellSubmissionMetric

__all__ = ['CellCocoMetric', 'CellSubmissionMetric']
