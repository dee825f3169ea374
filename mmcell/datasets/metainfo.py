"""The one home of the HW3 class names, their colours and the contest constants.

Everything that names a class, draws one or knows a contest rule imports from here: the dataset classes
(``METAINFO``), the COCO converters and ground truth, the analyses, the label images and the submission writer.
"""
from __future__ import annotations

import colorsys
import hashlib
from typing import List, Mapping, Optional, Sequence, Tuple

#: ``class1.tif`` .. ``class4.tif``: model label K - 1, contest ``category_id`` K.
CLASSES = ('epithelial', 'lymphocyte', 'macrophage', 'neutrophil')
NUM_CLASSES = len(CLASSES)
#: RGB colour per class (overlays, plots, mmdet's visualizer through ``dataset_meta['palette']``).
PALETTE = [(220, 20, 60), (30, 90, 255), (0, 170, 0), (255, 165, 0)]
#: ``METAINFO`` of the dataset classes (and the ``dataset_meta`` a checkpoint carries).
CELL_METAINFO = dict(classes=CLASSES, palette=PALETTE)
#: The colour of a class **name** in QuPath and the previews, whatever the model or its class order: the HW3
#: classes as :data:`PALETTE`, CoNSeP's merged classes, and QuPath's own default classes as QuPath draws them.
NAMED_COLORS = {
    **dict(zip(CLASSES, PALETTE)),
    'other': (255, 200, 0), 'inflammatory': (160, 90, 160), 'spindle': (150, 200, 150),
    'spindle-shaped': (150, 200, 150), 'nucleus': (0, 180, 180),
    'tumor': (200, 0, 0), 'stroma': (150, 200, 150), 'immune cells': (160, 90, 160), 'necrosis': (50, 50, 50),
    'positive': (200, 50, 50), 'negative': (112, 112, 225),
}

#: The file a Codabench submission zip must hold.
SUBMISSION_JSON = 'test-results.json'
#: Plain pycocotools keeps the best 100 detections per image **and** category (maxDets=100) for the contest AP50.
CONTEST_MAX_DETS = 100
#: The honest figure on dense images (hundreds of nuclei): maxDets 1000.
DENSE_MAX_DETS = 1000


def class_color(name: str) -> Tuple[int, int, int]:
    """RGB colour of a class name: :data:`NAMED_COLORS` (case-insensitive), else a bright colour derived from the
    name's hash, so a name keeps its colour across models, runs and machines."""
    known = NAMED_COLORS.get(str(name).strip().lower())
    if known is not None:
        return tuple(int(v) for v in known)
    digest = hashlib.sha1(str(name).encode('utf-8')).digest()
    hue, sat, val = digest[0] / 255.0, 0.55 + 0.35 * digest[1] / 255.0, 0.75 + 0.2 * digest[2] / 255.0
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, sat, val))


def class_palette(names: Sequence[str]) -> List[Tuple[int, int, int]]:
    """:func:`class_color` of each name."""
    return [class_color(n) for n in names]


def num_classes_of(dataset_meta: Optional[Mapping] = None) -> int:
    """The class count of a model or data set: its ``dataset_meta['classes']``; the HW3 classes when it has none."""
    classes = (dataset_meta or {}).get('classes') or ()
    return len(classes) or NUM_CLASSES
