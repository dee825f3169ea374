"""Metrics registered into mmdet METRICS."""
from .submission_metric import CellSubmissionMetric

__all__ = ['CellSubmissionMetric']
