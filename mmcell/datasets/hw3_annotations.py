"""Parsed HW3 training annotations with an on-disk cache, and the seeded train/val split.

Parsing 209 folders with up to 772 instances each (float64 maps of up to 2500 px) takes long enough to notice at
every launch, so the parsed instances (compact COCO RLE) are cached in one JSON file per data root. Each folder's
entry is keyed by the name, size and mtime of its files; a changed, added or removed file re-parses that folder
only.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from mmcell.utils.errors import HW3FormatError, PathLike

from ..utils.fileio import write_json
from .hw3_format import list_train_samples, parse_sample, sample_files

CACHE_VERSION = 1
CACHE_DIR_NAME = '.mmcell_cache'


def file_signature(files: Sequence[Path]) -> List[list]:
    """``[[name, size, mtime_ns], ...]`` of the files that define one sample."""
    out = []
    for f in files:
        st = f.stat()
        out.append([f.name, int(st.st_size), int(st.st_mtime_ns)])
    return out


def default_cache_file(data_root: PathLike, img_dir: str = 'train') -> Path:
    """``DATA_ROOT/.mmcell_cache/<img_dir>_annotations.json``, or a per-user cache when the root is read-only."""
    root = Path(data_root).resolve()
    if os.access(root, os.W_OK):
        return root / CACHE_DIR_NAME / f'{img_dir}_annotations.json'
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    return Path.home() / '.cache' / 'mmcell' / 'hw3' / f'{digest}_{img_dir}_annotations.json'


def _read_cache(cache_file: Optional[Path]) -> Dict[str, dict]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        content = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}  # a damaged cache is rebuilt, never trusted
    if not isinstance(content, dict) or content.get('version') != CACHE_VERSION:
        return {}
    return content.get('samples', {})


def load_train_annotations(data_root: PathLike, img_dir: str = 'train',
                           cache_file: Union[str, Path, None] = 'auto', progress: bool = True,
                           stats: Optional[dict] = None) -> List[dict]:
    """Parse every ``train/<uuid>/`` folder (through the cache).

    Args:
        data_root: the HW3 data root.
        img_dir: the training folder inside it.
        cache_file: the cache JSON; ``'auto'`` for :func:`default_cache_file`, None to disable caching.
        progress: show a progress bar while parsing.
        stats: if given, filled with ``parsed`` and ``cached`` folder counts.

    Returns:
        One dict per folder in sorted order: ``name``, ``img_path`` (absolute), ``height``, ``width``,
        ``instances`` (``class_id``, ``instance_id``, ``bbox`` [x1, y1, x2, y2], ``area``, ``mask`` RLE).

    Raises:
        HW3FormatError: the first bad folder or file, named in the message.
    """
    samples = list_train_samples(data_root, img_dir)
    if cache_file == 'auto':
        cache_file = default_cache_file(data_root, img_dir)
    cache_path = Path(cache_file) if cache_file is not None else None
    cached = _read_cache(cache_path)
    todo = []
    signatures = {}
    for sample in samples:
        signatures[sample.name] = file_signature(sample_files(sample))
        entry = cached.get(sample.name)
        if entry is None or entry.get('signature') != signatures[sample.name]:
            todo.append(sample)
    iterator = todo
    if progress and len(todo) > 1:
        iterator = tqdm(todo, desc=f'parsing {Path(data_root).name}/{img_dir}', unit='img', leave=False)
    for sample in iterator:
        parsed = parse_sample(sample)
        parsed['signature'] = signatures[sample.name]
        cached[sample.name] = parsed
    if stats is not None:
        stats.update(parsed=len(todo), cached=len(samples) - len(todo))
    names = {s.name for s in samples}
    if cache_path is not None and (todo or set(cached) != names):
        try:
            write_json(cache_path, dict(version=CACHE_VERSION,
                                        samples={k: v for k, v in cached.items() if k in names}))
        except OSError:
            pass  # caching is an optimisation: a read-only location only costs the next launch a re-parse
    return [dict(name=s.name, img_path=str((s / 'image.tif').resolve()), height=cached[s.name]['height'],
                 width=cached[s.name]['width'], instances=cached[s.name]['instances']) for s in samples]


def _check_names(source: PathLike, listed: Sequence[str], names: Sequence[str]) -> List[str]:
    """``listed`` as folder names (``'train/<id>'``, ``'<id>'`` or ``'<id>/'``), each one of ``names``."""
    known, out = set(names), []
    for item in listed:
        name = Path(str(item).strip()).name
        if name not in known:
            raise HW3FormatError(source, f'names {item!r}, which is not a training folder')
        out.append(name)
    return out


def _read_split_file(split_file: Path, names: Sequence[str]) -> Dict[str, List[str]]:
    def check(listed: Sequence[str]) -> List[str]:
        return _check_names(split_file, listed, names)

    if not split_file.is_file():
        raise HW3FormatError(split_file, 'split file not found')
    text = split_file.read_text()
    if split_file.suffix.lower() == '.json':
        try:
            content = json.loads(text)
        except ValueError as err:
            raise HW3FormatError(split_file, f'unreadable JSON ({err})') from None
        if not isinstance(content, dict) or 'val' not in content:
            raise HW3FormatError(split_file, 'expected {"train": [...], "val": [...]}')
        val = check(content['val'])
        train = check(content['train']) if 'train' in content else [n for n in names if n not in set(val)]
    else:  # one validation folder name per line, '#' starts a comment
        lines = [ln.split('#')[0].strip() for ln in text.splitlines()]
        val = check([ln for ln in lines if ln])
        train = [n for n in names if n not in set(val)]
    both = set(train) & set(val)
    if both:
        raise HW3FormatError(split_file, f'{sorted(both)[0]} is in both train and val')
    return dict(train=sorted(train), val=sorted(val))


def split_samples(names: Sequence[str], split: str = 'train', val_ratio: float = 0.2, seed: int = 0,
                  split_file: Optional[PathLike] = None, val_names: Optional[Sequence[str]] = None,
                  data_root: PathLike = '.') -> List[str]:
    """Select the folders of one split; the split is disjoint by image and reproducible.

    Args:
        names: all training folder names.
        split: ``'train'``, ``'val'`` or ``'all'``.
        val_ratio: fraction of images for validation when no ``split_file`` is given (at least one image when
            the ratio is > 0 and there are two or more images).
        seed: seed of the permutation; the same names, ratio and seed give the same split on every machine.
        split_file: a ``.txt`` of validation folder names (one per line) or a ``.json``
            ``{"train": [...], "val": [...]}``.
        val_names: the validation folder names themselves (a fixed split written in a config); the rest is train.
        data_root: named in the error when ``val_names`` lists an unknown folder.

    Returns:
        The selected names, sorted.
    """
    names = sorted(names)
    if split not in ('train', 'val', 'all'):
        raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
    if split == 'all':
        return names
    if split_file is not None:
        return _read_split_file(Path(split_file), names)[split]
    if val_names is not None:
        val = set(_check_names(Path(data_root), val_names, names))
        return [n for n in names if (n in val) == (split == 'val')]
    if not 0.0 <= val_ratio < 1.0:
        raise ValueError(f'val_ratio must be in [0, 1), got {val_ratio}')
    n_val = int(round(val_ratio * len(names)))
    if val_ratio > 0 and n_val == 0 and len(names) > 1:
        n_val = 1
    order = np.random.default_rng(seed).permutation(len(names))
    val = {names[i] for i in order[:n_val]}
    return [n for n in names if (n in val) == (split == 'val')]
