"""The one home of the HW3 class names, their colours and the contest constants.

Everything that names a class, draws one or knows a contest rule imports from here: the dataset classes
(``METAINFO``), the COCO converters and ground truth, the analyses, the label images and the submission writer.
"""
from __future__ import annotations

from typing import Mapping, Optional

#: ``class1.tif`` .. ``class4.tif``: model label K - 1, contest ``category_id`` K.
CLASSES = ('epithelial', 'lymphocyte', 'macrophage', 'neutrophil')
NUM_CLASSES = len(CLASSES)
#: RGB colour per class (overlays, plots, mmdet's visualizer through ``dataset_meta['palette']``).
PALETTE = [(220, 20, 60), (30, 90, 255), (0, 170, 0), (255, 165, 0)]
#: ``METAINFO`` of the dataset classes (and the ``dataset_meta`` a checkpoint carries).
CELL_METAINFO = dict(classes=CLASSES, palette=PALETTE)

#: The file a Codabench submission zip must hold.
SUBMISSION_JSON = 'test-results.json'
#: Plain pycocotools keeps the best 100 detections per image **and** category (maxDets=100) for the contest AP50.
CONTEST_MAX_DETS = 100
#: The honest figure on dense images (hundreds of nuclei): maxDets 1000.
DENSE_MAX_DETS = 1000


def num_classes_of(dataset_meta: Optional[Mapping] = None) -> int:
    """The class count of a model or data set: its ``dataset_meta['classes']``; the HW3 classes when it has none."""
    classes = (dataset_meta or {}).get('classes') or ()
    return len(classes) or NUM_CLASSES
