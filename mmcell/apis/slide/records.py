"""What a finished tile leaves behind: its cells (boxes, scores, classes, RLE masks in level-0 pixels, stain means)
packed as one record, and the resumable work folder (``.work/``) that holds the plan and the per-process logs of
records."""
from __future__ import annotations

import io
import json
import os
import os.path as osp
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage

from mmcell.datasets.slide.reader import SlideError
from mmcell.datasets.slide.tiling import SlideTiling
from mmcell.exporters.measurements import INTENSITY_FIELDS, intensity_statistics
from mmcell.structures.rle import rle_pixels
from mmcell.structures.tiling import in_core
from mmcell.utils.errors import PathLike
from mmcell.utils.fileio import (
    AppendLog,
)


# ------------------------------------------------------------------------------------------------ tile records
def tile_record(sample: Any, tiling: SlideTiling, tile_id: int, score_thr: float,
                rgb: Optional[np.ndarray] = None) -> Tuple[bytes, int]:
    """The cells of one tile prediction (level-0 px, rescaled by the model) whose box centre lies in the tile core.

    Returns the ``.npz`` bytes of ``boxes`` (crop boxes, level-0 px), ``scores``, ``labels``, ``means`` (the
    :func:`mmcell.exporters.measurements.intensity_statistics` of the nucleus pixels: RGB means, hematoxylin mean,
    eosin mean, hematoxylin std dev and max), ``packed`` crops (holes filled) + ``offsets``, and when the model
    kept them (``FastStandardRoIHead``, several classes) ``margins`` and ``runner_up``; and the cell count.
    """


    pred = sample.pred_instances
    x, y, w, h = tiling.rect(tile_id)
    scores = pred.scores.detach().cpu().numpy().astype(np.float32)
    boxes = pred.bboxes.detach().cpu().numpy().astype(np.float64) + np.array([x, y, x, y])
    keep = np.flatnonzero((scores >= score_thr) & in_core(boxes, tiling.core(tile_id)))
    masks = pred.masks
    labels = pred.labels.detach().cpu().numpy()
    margins = pred.class_margin.detach().cpu().numpy().astype(np.float32) if 'class_margin' in pred else None
    runner_up = pred.runner_up.detach().cpu().numpy() if 'runner_up' in pred else None
    crops, out_boxes, out_scores, out_labels, means, kept = [], [], [], [], [], []
    for i in keep:
        if isinstance(masks, (list, tuple)):
            lin = rle_pixels(masks[i])
            if not len(lin):
                continue
            xs, ys = lin // h, lin % h
        else:
            dense = masks[i].detach().cpu().numpy() if hasattr(masks[i], 'detach') else np.asarray(masks[i])
            ys, xs = np.nonzero(dense)
            if not len(xs):
                continue
        cx0, cy0 = int(xs.min()), int(ys.min())
        crop = np.zeros((int(ys.max()) - cy0 + 1, int(xs.max()) - cx0 + 1), bool)
        crop[ys - cy0, xs - cx0] = True
        crop = ndimage.binary_fill_holes(crop)
        if rgb is not None:
            sx, sy = rgb.shape[1] / w, rgb.shape[0] / h
            px = rgb[np.minimum(((ys + 0.5) * sy).astype(np.int64), rgb.shape[0] - 1),
                     np.minimum(((xs + 0.5) * sx).astype(np.int64), rgb.shape[1] - 1)]
            means.append(intensity_statistics(px))
        else:
            means.append(intensity_statistics(None))
        crops.append(np.packbits(crop.ravel()))
        out_boxes.append([x + cx0, y + cy0, x + cx0 + crop.shape[1], y + cy0 + crop.shape[0]])
        out_scores.append(scores[i])
        out_labels.append(labels[i])
        kept.append(i)
    extra = {}
    if margins is not None and runner_up is not None:
        extra = dict(margins=margins[np.array(kept, np.int64)], runner_up=runner_up[np.array(kept, np.int64)]
                     .astype(np.int16))
    offsets = np.zeros(len(crops) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in crops]) if crops else []
    buf = io.BytesIO()
    np.savez(buf, boxes=np.array(out_boxes, np.int64).reshape(-1, 4), scores=np.array(out_scores, np.float32),
             labels=np.array(out_labels, np.int16),
             means=np.array(means, np.float32).reshape(-1, len(INTENSITY_FIELDS)),
             packed=np.concatenate(crops) if crops else np.zeros(0, np.uint8), offsets=offsets, **extra)
    return buf.getvalue(), len(crops)


def _load_npz(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


# ------------------------------------------------------------------------------------------------ work folder
class SlideWork:
    """The ``.work/`` folder of one slide: the plan and the finished tiles of every process."""

    def __init__(self, slide_dir: PathLike) -> None:
        self.slide_dir = Path(slide_dir)
        self.dir = self.slide_dir / '.work'
        self.plan_file = self.dir / 'plan.json'

    def read_plan(self) -> Optional[dict]:
        if not self.plan_file.is_file():
            return None
        try:
            return json.loads(self.plan_file.read_text())
        except ValueError:
            raise SlideError(f'{self.plan_file}: unreadable plan; pass --overwrite to start again') from None

    def logs(self) -> List[Tuple[Path, Path]]:
        return [(p.with_suffix('.bin'), p) for p in sorted(self.dir.glob('tiles-*.jsonl'))]

    def finished(self) -> Dict[int, Tuple[Path, dict]]:
        """``tile_id -> (data file, manifest entry)`` of every finished tile (first record wins)."""
        done: Dict[int, Tuple[Path, dict]] = {}
        for data, manifest in self.logs():
            for meta in AppendLog.read_manifest(manifest, data):
                done.setdefault(int(meta['tile']), (data, meta))
        return done

    def log_for(self, part: str) -> AppendLog:
        return AppendLog(self.dir / f'tiles-{part}.bin', self.dir / f'tiles-{part}.jsonl')


def _file_key(path: str) -> dict:
    st = os.stat(path)
    return dict(path=osp.abspath(path), size=st.st_size, mtime=int(st.st_mtime))


@dataclass
class SlideResult:
    """What :func:`segment_slide` did with one slide."""
    slide: str
    out_dir: str
    status: str  # 'done', 'skipped' (finished before), 'shard done' (waits for merge-slide)
    cells: int = 0
    tissue_mm2: float = 0.0
    tiles: int = 0
    tiles_run: int = 0
    seconds: float = 0.0
    files: Dict[str, str] = field(default_factory=dict)


def _jsonable_meta(meta: Optional[dict]) -> Optional[dict]:
    if not meta:
        return None
    return dict(classes=list(meta.get('classes', ())), palette=[list(map(int, c)) for c in meta.get('palette', ())])
