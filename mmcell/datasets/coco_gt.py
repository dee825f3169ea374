"""The one COCO ground-truth builder: dataset entries (or parsed HW3 folders) -> a COCO instance dict.

Used by the HW3 -> COCO converter, the synthetic generator (``test_gt_coco.json``), ``CellCocoMetric`` without an
``ann_file`` and the analysis tools, so every COCO file mmcell makes follows the same rules: ``category_id`` =
label + 1, ``bbox`` in xywh, ``area`` of the mask, RLE ``counts`` as ``str``, ``ignore_flag`` -> ``iscrowd``.
"""
from __future__ import annotations

import os.path as osp
from typing import Dict, Iterable, List, Mapping, Sequence

import pycocotools.mask as mask_utils

from mmcell.structures.rle import rle_bytes

from .metainfo import CLASSES


def coco_categories(classes: Sequence[str] = CLASSES) -> List[dict]:
    """COCO categories: id K for label K - 1 (``class<K>.tif``), named like the dataset classes so that mmdet's
    CocoMetric and CocoDataset (which look categories up by name) accept the file; ``supercategory`` keeps the
    HW3 file name."""
    return [dict(id=k, name=name, supercategory=f'class{k}') for k, name in enumerate(classes, start=1)]


def coco_ground_truth(entries: Iterable[Mapping], classes: Sequence[str] = CLASSES) -> dict:
    """COCO ground truth of dataset entries.

    Args:
        entries: dicts with ``img_id``, ``height``, ``width``, ``file_name`` (or ``img_path``: its base name) and
            ``instances``: ``bbox_label`` (0-based), ``mask`` (COCO RLE dict; None for box-only ground truth) and
            optionally ``bbox`` (x1y1x2y2; default: the mask's box), ``ignore_flag`` (-> ``iscrowd``),
            ``instance_id`` (kept as ``hw3_instance_id``).
        classes: class names of labels 0..K-1.

    Raises:
        ValueError: an instance mask that is not an RLE dict (naming the image).
    """
    images, annotations = [], []
    for info in entries:
        img_id, h, w = int(info['img_id']), int(info['height']), int(info['width'])
        file_name = info.get('file_name') or osp.basename(str(info.get('img_path', '')))
        images.append(dict(id=img_id, file_name=file_name, height=h, width=w))
        for inst in info.get('instances', []):
            ann = dict(id=len(annotations) + 1, image_id=img_id, category_id=int(inst['bbox_label']) + 1,
                       iscrowd=int(inst.get('ignore_flag', 0)))
            mask = inst.get('mask')
            if mask is not None:
                if not isinstance(mask, Mapping) or 'counts' not in mask:
                    raise ValueError(f'{info.get("img_path", file_name)}: instance mask is not an RLE dict')
                rle = rle_bytes(mask)
                ann['segmentation'] = {'size': rle['size'], 'counts': rle['counts'].decode()}
                ann['area'] = float(mask_utils.area(rle))
            if inst.get('bbox') is not None:
                x1, y1, x2, y2 = (float(v) for v in inst['bbox'])
                ann['bbox'] = [x1, y1, x2 - x1, y2 - y1]
            else:
                ann['bbox'] = [float(v) for v in mask_utils.toBbox(rle)]
            ann.setdefault('area', ann['bbox'][2] * ann['bbox'][3])
            if 'instance_id' in inst:
                ann['hw3_instance_id'] = inst['instance_id']
            annotations.append(ann)
    return dict(images=images, annotations=annotations, categories=coco_categories(classes))


def samples_to_coco(samples: List[dict], img_ids: Dict[str, int], file_name: str = 'train/{name}/image.tif',
                    classes: Sequence[str] = CLASSES) -> dict:
    """COCO dict for parsed HW3 training folders (see ``load_train_annotations``) with the given image ids.

    Args:
        samples: parsed samples (``name``, ``height``, ``width``, ``instances`` with ``class_id`` K).
        img_ids: image id of each sample name.
        file_name: the ``file_name`` of each image, formatted with the sample's ``name`` (a converted test
            release names ``'{name}.tif'``).
        classes: category names of ``class1.tif``, ``class2.tif``, ... (default: the four HW3 classes).
    """
    return coco_ground_truth(
        (dict(img_id=img_ids[s['name']], file_name=file_name.format(name=s['name']), height=s['height'],
              width=s['width'], instances=[dict(inst, bbox_label=inst['class_id'] - 1) for inst in s['instances']])
         for s in samples), classes)
