"""Metrics registered into mmdet METRICS."""
from .aji import aji, aji_plus
from .cell_coco_metric import CellCocoMetric
from .detection import detection_f1
from .instance_overlap import instance_overlap
from .pathology_metric import CellPathologyMetric
from .pq import multiclass_pq, panoptic_quality
from .submission_metric import CellSubmissionMetric

__all__ = ['CellCocoMetric', 'CellSubmissionMetric', 'CellPathologyMetric', 'aji', 'aji_plus', 'panoptic_quality',
           'multiclass_pq', 'detection_f1', 'instance_overlap']
