"""HW3 cell data sets for mmdet pipelines: the training folders (with a seeded split) and the test release."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Union

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from mmcell.utils.errors import HW3FormatError

from .hw3_annotations import load_train_annotations, split_samples
from .hw3_format import list_train_samples, read_test_ids
from .metainfo import CELL_METAINFO


@DATASETS.register_module()
class CellInstanceDataset(BaseDetDataset):
    """The ``train/<uuid>/`` folders of an HW3 release, read as-is (no conversion step).

    Instances are the distinct non-zero values of each ``class<K>.tif`` (label K-1), kept as compact RLE; the
    parsed annotations are cached (see :func:`load_train_annotations`). ``img_id`` is the 1-based position of the
    folder among all sorted training folders, so ids agree across splits.

    Args:
        data_root: the release folder (holding ``train/``).
        split: ``'train'``, ``'val'`` or ``'all'``.
        val_ratio: fraction of folders for ``'val'`` (seeded, reproducible, disjoint by image).
        seed: seed of the split.
        split_file: optional ``.txt`` of validation folder names or ``.json`` ``{"train": [...], "val": [...]}``;
            overrides ``val_ratio``.
        val_names: validation folder names written in the config (a fixed split, e.g. the MoNuSeg recipe's);
            overrides ``val_ratio``.
        class_agnostic: every instance gets label 0 whatever its ``class<K>.tif`` (one-class recipes such as
            MoNuSeg's, or class-agnostic training on a multi-class set); use with ``metainfo=dict(classes=(...,))``
            of one class.
        img_dir: the training folder inside ``data_root``.
        cache_file: the parse cache; ``'auto'`` puts it under ``data_root/.mmcell_cache/``, None disables it.
        min_instance_size: instances whose box is narrower or lower than this (px) are dropped, with a count.
        **kwargs: :class:`mmdet.datasets.BaseDetDataset` arguments (pipeline, filter_cfg, test_mode, ...).
    """

    METAINFO = CELL_METAINFO

    def __init__(self, *args, split: str = 'train', val_ratio: float = 0.2, seed: int = 0,
                 split_file: Optional[str] = None, val_names: Optional[Sequence[str]] = None,
                 img_dir: str = 'train', cache_file: Union[str, None] = 'auto', min_instance_size: float = 1.0,
                 class_agnostic: bool = False, **kwargs) -> None:
        self.split, self.val_ratio, self.seed, self.split_file = split, val_ratio, seed, split_file
        self.val_names, self.class_agnostic = val_names, class_agnostic
        self.img_dir, self.cache_file, self.min_instance_size = img_dir, cache_file, min_instance_size
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        names = [p.name for p in list_train_samples(self.data_root, self.img_dir)]
        chosen = set(split_samples(names, self.split, self.val_ratio, self.seed, self.split_file, self.val_names,
                                   data_root=Path(self.data_root or '.') / self.img_dir))
        samples = load_train_annotations(self.data_root, self.img_dir, self.cache_file)
        data_list, dropped = [], 0
        classes = tuple(self.metainfo['classes'])
        for img_id, sample in enumerate(samples, start=1):
            if sample['name'] not in chosen:
                continue
            instances = []
            for inst in sample['instances']:
                if not self.class_agnostic and inst['class_id'] > len(classes):
                    raise HW3FormatError(
                        Path(sample['img_path']).parent / f'class{inst["class_id"]}.tif',
                        f'unexpected class file: the dataset has {len(classes)} '
                        f'class{"es" if len(classes) != 1 else ""} {classes}; set '
                        'metainfo=dict(classes=(...)) and the model num_classes for more, or class_agnostic=True '
                        'to merge them')
                x1, y1, x2, y2 = inst['bbox']
                if inst['area'] <= 0 or x2 - x1 < self.min_instance_size or y2 - y1 < self.min_instance_size:
                    dropped += 1
                    continue
                label = 0 if self.class_agnostic else inst['class_id'] - 1
                instances.append(dict(bbox=[x1, y1, x2, y2], bbox_label=label, mask=inst['mask'],
                                      ignore_flag=0, instance_id=inst['instance_id']))
            data_list.append(dict(img_path=sample['img_path'], img_id=img_id, height=sample['height'],
                                  width=sample['width'], instances=instances))
        if dropped:
            print_log(f'{self.data_root}: dropped {dropped} degenerate instances (box side < '
                      f'{self.min_instance_size:g} px)', logger='current', level=30)
        return data_list

    def filter_data(self) -> List[dict]:
        """Drop images without instances for training when ``filter_cfg.filter_empty_gt`` (mmdet semantics)."""
        if self.test_mode or not self.filter_cfg or not self.filter_cfg.get('filter_empty_gt', False):
            return self.data_list
        return [d for d in self.data_list if d['instances']]


@DATASETS.register_module()
class CellTestDataset(BaseDetDataset):
    """The flat ``test_release/*.tif`` folder with the contest ids from ``test_image_name_to_ids.json``.

    ``img_id`` is the contest ``image_id`` and ``height``/``width`` the original size, so predictions can be
    written straight into a submission. No annotations are needed.

    Args:
        data_root: the release folder.
        ids_file: the ids json, relative to ``data_root`` (or absolute).
        img_dir: the test image folder, relative to ``data_root``.
    """

    METAINFO = CELL_METAINFO

    def __init__(self, *args, ids_file: str = 'test_image_name_to_ids.json', img_dir: str = 'test_release',
                 **kwargs) -> None:
        self.ids_file, self.img_dir = ids_file, img_dir
        kwargs.setdefault('test_mode', True)
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        root = Path(self.data_root or '.')
        img_dir = root / self.img_dir
        return [dict(img_path=str(img_dir / e['file_name']), img_id=int(e['id']), height=int(e['height']),
                     width=int(e['width']), instances=[])
                for e in read_test_ids(root / self.ids_file, img_dir)]
