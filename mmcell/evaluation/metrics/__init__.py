"""The metrics registered in mmdet's ``METRICS``: COCO AP (contest and dense), pathology figures, submission."""
from .cell_coco_metric import CellCocoMetric
from .pathology_metric import CellPathologyMetric
from .submission_metric import CellSubmissionMetric

__all__ = ['CellCocoMetric', 'CellPathologyMetric', 'CellSubmissionMetric']
