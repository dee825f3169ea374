"""HW3 -> COCO instance json (RLE segmentations), sharing the parser, cache and split with the dataset class."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Union

from mmcell.utils.errors import PathLike
from mmcell.utils.fileio import write_json

from ..coco_gt import coco_categories, samples_to_coco  # noqa: F401  (the one COCO ground-truth builder)
from ..hw3_annotations import load_train_annotations, split_samples


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
