"""Tiny hand-made HW3 folders for edge-case tests (written with the project's own HW3 writers)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from mmcell.datasets.hw3_format import write_class_map
from mmcell.datasets.image_io import write_image_tif


def touching_maps(height: int = 40, width: int = 48) -> Dict[int, np.ndarray]:
    """Class maps with ids > 255 and two touching cells of one class.

    Class 2 holds ids 5 and 261 in two rectangles that share an edge (261 wraps to 5 in uint8, so a uint8 cast or
    connected components would merge them); class 1 holds 256 (0 in uint8) and 1000; class 4 holds 7.
    """
    c1 = np.zeros((height, width))
    c1[2:8, 3:9] = 256
    c1[30:36, 30:40] = 1000
    c2 = np.zeros((height, width))
    c2[12:20, 10:16] = 5
    c2[12:20, 16:22] = 261  # touches id 5 along a whole column, no gap
    c4 = np.zeros((height, width))
    c4[25:28, 2:5] = 7
    return {1: c1, 2: c2, 4: c4}


def write_sample(root: Path, name: str, class_maps: Dict[int, np.ndarray],
                 image: Optional[np.ndarray] = None) -> Path:
    """Write ``root/train/<name>/`` with an RGBA LZW image.tif and float64 class maps."""
    h, w = next(iter(class_maps.values())).shape if class_maps else image.shape[:2]
    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    sample = root / 'train' / name
    sample.mkdir(parents=True, exist_ok=True)
    write_image_tif(sample / 'image.tif', image)
    for k, cmap in class_maps.items():
        write_class_map(sample / f'class{k}.tif', cmap)
    return sample


def write_test_release(root: Path, sizes: Dict[str, tuple], ids: Optional[Dict[str, int]] = None) -> Path:
    """Write ``test_release/<name>.tif`` images of the given (H, W) and the ids json; return the json path."""
    entries = []
    for n, (name, (h, w)) in enumerate(sorted(sizes.items())):
        write_image_tif(root / 'test_release' / name, np.full((h, w, 3), 200, np.uint8))
        entries.append(dict(file_name=name, id=(ids or {}).get(name, n + 1), height=h, width=w))
    path = root / 'test_image_name_to_ids.json'
    path.write_text(json.dumps(entries))
    return path
