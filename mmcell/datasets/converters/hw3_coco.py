"""HW3 -> COCO instance json (RLE segmentations), sharing the parser, cache and split with the dataset class."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from ..hw3_annotations import load_train_annotations, split_samples
from ..hw3_format import NUM_CLASSES, PathLike, write_json

# Dataset class names in file order: class<K>.tif -> COCO category id K.
CLASS_NAMES = ('epithelial', 'lymphocyte', 'macrophage', 'neutrophil')


def coco_categories(class_names: Sequence[str] = CLASS_NAMES[:NUM_CLASSES]) -> List[dict]:
    """COCO categories: id K for ``class<K>.tif``, named like the dataset classes so that mmdet's CocoMetric and
    CocoDataset (which look categories up by name) accept the file; ``supercategory`` keeps the file name.

    Args:
        class_names: names of ``class1.tif``, ``class2.tif``, ... (default: the four HW3 classes).
    """
    return [dict(id=k, name=name, supercategory=f'class{k}') for k, name in enumerate(class_names, start=1)]


def samples_to_coco(samples: List[dict], img_ids: Dict[str, int], file_name: str = 'train/{name}/image.tif',
                    class_names: Sequence[str] = CLASS_NAMES[:NUM_CLASSES]) -> dict:
    """COCO dict for parsed samples (see :func:`load_train_annotations`) with the given image ids.

    Args:
        samples: parsed samples (``name``, ``height``, ``width``, ``instances``).
        img_ids: image id of each sample name.
        file_name: the ``file_name`` of each image, formatted with the sample's ``name``.
        class_names: the category names (see :func:`coco_categories`).
    """
    images, annotations = [], []
    for sample in samples:
        img_id = img_ids[sample['name']]
        images.append(dict(id=img_id, file_name=file_name.format(name=sample['name']), height=sample['height'],
                           width=sample['width']))
        for inst in sample['instances']:
            x1, y1, x2, y2 = inst['bbox']
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id, category_id=inst['class_id'],
                                    bbox=[x1, y1, x2 - x1, y2 - y1], area=inst['area'], iscrowd=0,
                                    segmentation=inst['mask'], hw3_instance_id=inst['instance_id']))
    return dict(images=images, annotations=annotations, categories=coco_categories(class_names))


def hw3_to_coco(data_root: PathLike, out: PathLike, val_ratio: float = 0.0, seed: int = 0,
                split_file: Optional[PathLike] = None, cache_file: Union[str, Path, None] = 'auto',
                progress: bool = True) -> List[Path]:
    """Write COCO instance json(s) for ``DATA_ROOT/train``.

    Image ids are the positions of the folders in sorted order, the same ``img_id`` that
    :class:`CellInstanceDataset` gives, so the json works as ``ann_file`` of a metric on the dataset's val split.

    Args:
        data_root: the HW3 data root.
        out: output path ``OUT.json``. With ``val_ratio == 0`` and no ``split_file`` every image goes there;
            otherwise ``OUT_train.json`` and ``OUT_val.json`` are written.
        val_ratio: validation fraction (same seeded split as the dataset).
        seed: split seed.
        split_file: explicit split (see :func:`split_samples`).
        cache_file: parse cache (``'auto'``, a path, or None).
        progress: show parsing progress.

    Returns:
        The written files.
    """
    samples = load_train_annotations(data_root, cache_file=cache_file, progress=progress)
    names = [s['name'] for s in samples]
    img_ids = {name: i for i, name in enumerate(names)}
    out = Path(out)
    if val_ratio == 0 and split_file is None:
        write_json(out, samples_to_coco(samples, img_ids))
        return [out]
    written = []
    for split in ('train', 'val'):
        keep = set(split_samples(names, split, val_ratio, seed, split_file))
        path = out.with_name(f'{out.stem}_{split}{out.suffix or ".json"}')
        write_json(path, samples_to_coco([s for s in samples if s['name'] in keep], img_ids))
        written.append(path)
    return written
