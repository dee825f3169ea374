"""Pure scoring functions on label images and COCO dicts: instance overlaps and matching, AJI / AJI+, PQ / mPQ,
detection F1, HoVer-Net's classification F1 and the class confusion matrix, the per-image / data-set pathology
figures, COCO AP helpers and detection analyses."""
from .aji import aji, aji_plus
from .classification import classification_scores, confusion_matrix, pair_centroids
from .detection import detection_f1
from .instance_overlap import instance_overlap
from .pathology import image_figures, summarize_figures
from .pq import multiclass_pq, panoptic_quality

__all__ = ['aji', 'aji_plus', 'classification_scores', 'confusion_matrix', 'detection_f1', 'image_figures',
           'instance_overlap', 'multiclass_pq', 'pair_centroids', 'panoptic_quality', 'summarize_figures']
