"""More training data: a config's training set joined by whole extra HW3 data roots (``tools/train.py --extra-train``,
and every fold of the cross-validation protocol, :func:`mmcell.apis.crossval.cross_validate`).

The training set becomes one mmengine ``ConcatDataset``: the config's own training set (its validation samples
excluded, as before) and each extra data root read whole with the same pipeline and classes, each part repeated so
the pool is drawn by pixel area. Extra data is never validated or tested on, and an extra root may not hold a
sample of the training data root (its validation tiles would leak into training).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np
from mmengine.config import Config

from mmcell.utils.errors import InputError, one_line

from .dataset_config import cell_dataset_cfg
from .hw3_annotations import split_samples
from .hw3_format import list_train_samples
from .image_io import image_hw, tiff_shape


def _mean_area(data_root: Union[str, Path], names: Sequence[str]) -> float:
    """Mean image area (pixels) of the samples ``names`` of ``data_root`` (TIFF headers only)."""
    areas = []
    for name in names:
        path = Path(data_root) / 'train' / name / 'image.tif'
        try:
            h, w = image_hw(tiff_shape(path))
        except (OSError, ValueError) as err:
            raise InputError(f'{path}: not a readable image ({one_line(err)})') from None
        areas.append(h * w)
    return float(np.mean(areas))


def extra_train_parts(data_root: Union[str, Path], val_names: Sequence[str],
                      extra_train: Sequence[Union[str, Path]]) -> List[dict]:
    """The training parts with extra data: ``data_root`` minus ``val_names``, then each extra data root whole, with
    the times each is repeated so that a crop is drawn from every pixel of the pool alike (a part's repeat is its
    mean image area over the smallest part's, rounded; e.g. a 1000 px MoNuSeg tile weighs 15 CoNSeP 256 px patches,
    as if the tiles were cut into patches of that size).

    Returns:
        ``[dict(data_root, samples, mean_area, repeat)]``, the training data's own part first.

    Raises:
        InputError: an extra folder that is not an HW3 data root (no ``train/<id>/image.tif``), is the training data
            itself, or shares a sample name with it or with an earlier extra folder (validation / held-out tiles
            could leak into training, a sample would count twice): one line naming it.
    """
    own = [p.name for p in list_train_samples(data_root)]
    parts = [dict(data_root=str(data_root), samples=len(own) - len(set(val_names) & set(own)),
                  mean_area=_mean_area(data_root, [n for n in own if n not in set(val_names)]))]
    seen = {name: str(data_root) for name in own}
    for root in extra_train:
        if not Path(root).is_dir():
            raise InputError(f'{root}: extra training data not found (expected DATA_ROOT/train/<id>/image.tif)')
        if Path(root).resolve() == Path(data_root).resolve():
            raise InputError(f'{root}: the extra training data is the training data root itself')
        names = [p.name for p in list_train_samples(root)]
        shared = sorted(set(names) & set(seen))
        if shared:
            raise InputError(f'{root}: shares {len(shared)} sample name(s) with {seen[shared[0]]} (e.g. {shared[0]}): '
                             'extra training data must hold none of the training data\'s samples, nor another '
                             'extra folder\'s')
        seen.update((name, str(root)) for name in names)
        parts.append(dict(data_root=str(root), samples=len(names), mean_area=_mean_area(root, names)))
    smallest = min(p['mean_area'] for p in parts)
    for part in parts:
        part['repeat'] = max(1, int(round(part['mean_area'] / smallest)))
    return parts


def with_extra_train(cfg: Config, parts: Sequence[dict]) -> Config:
    """``cfg`` training on every part of :func:`extra_train_parts`: one ``ConcatDataset`` of the config's own
    training set (as it is, its wrapper too: a ``ClassBalancedDataset`` keeps sampling the own data by its repeat
    factors) and each extra data root read whole (a copy of the own ``CellInstanceDataset`` found inside any wrapper,
    :func:`mmcell.datasets.dataset_config.cell_dataset_cfg`, with ``split='all'``, the same pipeline and classes: a
    one-class recipe reads a multi-class set class-agnostic), a part with ``repeat`` > 1 wrapped in a
    ``RepeatDataset``. Validation and test sets are left alone: extra data is never scored."""
    cfg = copy.deepcopy(cfg)
    own = cfg.train_dataloader.dataset
    inner = cell_dataset_cfg(own, f'{cfg.filename}: the training set')
    datasets = []
    for k, part in enumerate(parts):
        ds = own if k == 0 else dict(copy.deepcopy(inner), data_root=part['data_root'], split='all', val_names=None)
        datasets.append(ds if part['repeat'] == 1 else dict(type='RepeatDataset', times=part['repeat'], dataset=ds))
    cfg.train_dataloader.dataset = dict(type='ConcatDataset', datasets=datasets)
    return cfg


def train_config_with_extra(cfg: Config, extra_train: Sequence[Union[str, Path]]) -> Config:
    """``cfg`` (a loaded training config, ``--data-root`` applied) training on its own training set plus each
    ``extra_train`` data root whole: :func:`extra_train_parts` of the training set's data root, its validation
    samples (the split the config's dataset makes: ``val_names``, ``split_file`` or the seeded ``val_ratio``)
    excluded as a cross-validation fold's held-out tiles are, then :func:`with_extra_train`.

    Raises:
        InputError: a training set that does not hold exactly one ``CellInstanceDataset`` (wrappers looked through;
            a ``ConcatDataset`` of two has no one data root to join), or a bad extra folder
            (:func:`extra_train_parts`): one line.
    """
    own = cell_dataset_cfg(cfg.train_dataloader.dataset, f'{cfg.filename}: --extra-train: the training set')
    data_root = own.get('data_root') or '.'
    names = [p.name for p in list_train_samples(data_root)]
    split = {k: own[k] for k in ('split', 'val_ratio', 'seed', 'split_file', 'val_names') if own.get(k) is not None}
    trained = set(split_samples(names, data_root=Path(data_root) / 'train', **split))
    return with_extra_train(cfg, extra_train_parts(data_root, [n for n in names if n not in trained], extra_train))
