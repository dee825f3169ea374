"""Pure scoring functions on label images and COCO dicts: instance overlaps and matching, AJI / AJI+, PQ / mPQ,
detection F1, COCO AP helpers and detection analyses."""
from .aji import aji, aji_plus
from .detection import detection_f1
from .instance_overlap import instance_overlap
from .pq import multiclass_pq, panoptic_quality

__all__ = ['aji', 'aji_plus', 'detection_f1', 'instance_overlap', 'multiclass_pq', 'panoptic_quality']
