"""``mmcell.apis.segment_slide``: whole-slide images in, QuPath-ready cells out (the API behind ``mmcell
segment-slide`` and ``mmcell merge-slide``).

For each slide, into ``OUT/<stem>/``:

1. **Plan.** Open the slide (:class:`mmcell.datasets.slide.SlideReader`), find the tissue on a thumbnail, lay out
   tiles of ``tile`` px at the model's mpp (config key ``model_mpp``) overlapping by ``overlap`` px and keep those
   with tissue; the plan is saved in ``.work/plan.json``.
2. **Tiles.** DataLoader workers read + resample + pre-process tiles; the model (:func:`build_inference_model`,
   fast path, RLE masks) predicts batches of them, boxes and masks rescaled to level-0 pixels. A detection belongs
   to the one tile whose core holds its box centre (:func:`mmcell.models.tiled.in_core`, the rule of
   :class:`TiledDetector`); each finished tile is appended to a per-process log (``.work/tiles-*.bin`` + ``.jsonl``
   manifest, :class:`mmcell.utils.fileio.AppendLog`), so a killed run continues where it stopped. Ranks of torchrun
   (or ``--shard I/N`` jobs) take every N-th tile.
3. **Merge.** Cells are resolved in a fixed order (tile by tile, score first): each keeps the pixels no
   better-scoring overlapping cell has, its largest connected part, and is dropped if less than
   :data:`MIN_VISIBLE_FRACTION` of its mask is left (the duplicate of a neighbour's cell). Ids are given in that
   order, so every run (1 or N processes, resumed or not) gives the same ids. The exporters of
   :mod:`mmcell.apis.exporters` stream ``cells.geojson.gz``, ``cells.csv.gz``, ``labels.ome.tif`` and
   ``preview.png`` into a temp folder that replaces ``OUT/<stem>/`` at the end (with ``summary.json``): final
   files appear together, or not at all.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mmcell.datasets.slide import (
    SlideError,
    SlideReader,
    SlideTiling,
    plan_tiles,
    slide_stem,
    tissue_mask,
)
from mmcell.evaluation.submission import LABEL_SCORE_THR
from mmcell.utils.fileio import (
    AppendLog,
    OutputPathError,
    atomic_dir,
    atomic_write_bytes,
    check_output_path,
    write_json,
)

from .exporters import Cell, CellChunk, CellWriter, PreviewCanvas, class_names_colors, pack_cells

DEFAULT_MODEL_MPP = 0.25  # configs without ``model_mpp``: HW3 / MoNuSAC crops are 40x scans (~0.25 um/px)
MIN_VISIBLE_FRACTION = 0.5  # a cell keeping less of its mask than this after overlaps is a duplicate: dropped
CELLS_PER_MEGAPIXEL = 2000  # detection limits per tile (RPN proposals and final boxes) scale with its area
PLAN_VERSION = 1
PathLike = Union[str, os.PathLike]


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


def model_mpp_of(cfg: Any) -> float:
    """The model's training resolution: the config's top-level ``model_mpp`` (default :data:`DEFAULT_MODEL_MPP`)."""
    value = cfg.get('model_mpp', None) if hasattr(cfg, 'get') else None
    return float(value) if value else DEFAULT_MODEL_MPP


def parse_shard(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """``'I/N'`` -> ``(I, N)`` with ``0 <= I < N``; a one-line ``ValueError`` otherwise."""
    if text is None:
        return None
    try:
        index, count = (int(v) for v in str(text).split('/'))
    except ValueError:
        raise ValueError(f'--shard {text}: expected I/N, e.g. --shard 0/4 (this job is shard I of N)') from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f'--shard {text}: need 0 <= I < N, e.g. --shard 0/4 ... --shard 3/4')
    return index, count


def detection_limits(cfg: Any, tile: int) -> dict:
    """``cfg_options`` raising the config's per-image detection limits to what a ``tile`` px tile can hold."""
    cells = int(math.ceil(CELLS_PER_MEGAPIXEL * tile * tile / 1e6))
    test_cfg = cfg.model.get('test_cfg', {}) or {}
    rpn, rcnn = dict(test_cfg.get('rpn', {}) or {}), dict(test_cfg.get('rcnn', {}) or {})
    opts = {}
    if rcnn:
        opts['model.test_cfg.rcnn.max_per_img'] = max(int(rcnn.get('max_per_img', 100)), cells)
    if rpn:
        opts['model.test_cfg.rpn.max_per_img'] = max(int(rpn.get('max_per_img', 1000)), 2 * cells)
        opts['model.test_cfg.rpn.nms_pre'] = max(int(rpn.get('nms_pre', 1000)), 2 * cells)
    return opts


# ------------------------------------------------------------------------------------------------ tile records
def _hed_means(pixels: np.ndarray) -> np.ndarray:
    from mmcell.datasets.transforms.augment import HED_FROM_RGB

    od = -np.log(np.maximum(pixels.astype(np.float64) / 255.0, 1e-6))
    return (od @ HED_FROM_RGB)[:, :2].mean(0)


def tile_record(sample: Any, tiling: SlideTiling, tile_id: int, score_thr: float,
                rgb: Optional[np.ndarray] = None) -> Tuple[bytes, int]:
    """The cells of one tile prediction (level-0 px, rescaled by the model) whose box centre lies in the tile core.

    Returns the ``.npz`` bytes of ``boxes`` (crop boxes, level-0 px), ``scores``, ``labels``, ``means`` (R, G, B,
    hematoxylin, eosin of the nucleus pixels), ``packed`` crops (holes filled) + ``offsets``; and the cell count.
    """
    from scipy import ndimage

    from mmcell.datasets.rle import rle_runs
    from mmcell.models.tiled import in_core

    pred = sample.pred_instances
    x, y, w, h = tiling.rect(tile_id)
    scores = pred.scores.detach().cpu().numpy().astype(np.float32)
    boxes = pred.bboxes.detach().cpu().numpy().astype(np.float64) + np.array([x, y, x, y])
    keep = np.flatnonzero((scores >= score_thr) & in_core(boxes, tiling.core(tile_id)))
    masks = pred.masks
    labels = pred.labels.detach().cpu().numpy()
    crops, out_boxes, out_scores, out_labels, means = [], [], [], [], []
    for i in keep:
        if isinstance(masks, (list, tuple)):
            starts, lengths = rle_runs(masks[i])
            if not len(lengths):
                continue
            lin = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + \
                np.arange(int(lengths.sum()))
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
            means.append(np.concatenate([px.mean(0), _hed_means(px)]))
        else:
            means.append(np.full(5, np.nan))
        crops.append(np.packbits(crop.ravel()))
        out_boxes.append([x + cx0, y + cy0, x + cx0 + crop.shape[1], y + cy0 + crop.shape[0]])
        out_scores.append(scores[i])
        out_labels.append(labels[i])
    offsets = np.zeros(len(crops) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in crops]) if crops else []
    buf = io.BytesIO()
    np.savez(buf, boxes=np.array(out_boxes, np.int64).reshape(-1, 4), scores=np.array(out_scores, np.float32),
             labels=np.array(out_labels, np.int16), means=np.array(means, np.float32).reshape(-1, 5),
             packed=np.concatenate(crops) if crops else np.zeros(0, np.uint8), offsets=offsets)
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


def _plan(reader: SlideReader, tiling: SlideTiling, args: dict, tissue_mm2: float) -> dict:
    tiles_digest = hashlib.sha1(json.dumps(tiling.to_json(), sort_keys=True).encode()).hexdigest()
    return dict(version=PLAN_VERSION, slide=_file_key(reader.path), dimensions=list(reader.dimensions),
                mpp=reader.mpp, args=args, tiling=tiling.to_json(), tiling_digest=tiles_digest,
                tissue_mm2=tissue_mm2)


def _same_plan(a: dict, b: dict) -> Optional[str]:
    """Why two plans differ (None if they describe the same run)."""
    for key in ('version', 'slide', 'dimensions', 'mpp', 'tiling_digest'):
        if a.get(key) != b.get(key):
            return f'{key} changed'
    for key in sorted(set(a['args']) | set(b['args'])):
        if a['args'].get(key) != b['args'].get(key):
            return f'{key} was {a["args"].get(key)!r}, now {b["args"].get(key)!r}'
    return None


# ------------------------------------------------------------------------------------------------ running tiles
def _run_tiles(model: torch.nn.Module, reader: SlideReader, tiling: SlideTiling, tile_ids: Sequence[int],
               log: AppendLog, score_thr: float, batch_size: int, num_workers: int, progress: bool,
               desc: str) -> int:
    from mmcell.datasets.slide import SlideTileDataset, collate_tiles, die_with_parent

    pipeline = (model.cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')
                or model.cfg.get('test_pipeline'))
    dataset = SlideTileDataset(reader, tiling, tile_ids, pipeline)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                         collate_fn=collate_tiles, shuffle=False, worker_init_fn=die_with_parent,
                                         prefetch_factor=2 if num_workers else None)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(tile_ids), desc=desc, unit='tile', dynamic_ncols=True)
    cells = 0
    try:
        with torch.no_grad():
            for batch in loader:
                for item in batch:
                    if 'error' in item:
                        raise SlideError(item['error'])
                # a short last batch is padded with copies: every tile goes through a batch of the same size,
                # so its result does not depend on where a run (or a rank, or a resumed run) cut the tile list
                padded = batch + [batch[-1]] * (batch_size - len(batch))
                outputs = model.test_step(dict(inputs=[b['inputs'] for b in padded],
                                               data_samples=[b['data_samples'].clone() for b in padded]))
                for item, out in zip(batch, outputs):
                    data, n = tile_record(out.cpu(), tiling, item['tile_id'], score_thr, item['rgb'])
                    log.append(data, dict(tile=int(item['tile_id']), cells=n))
                    cells += n
                if bar is not None:
                    bar.update(len(batch))
                    bar.set_postfix(cells=cells)
    finally:
        if bar is not None:
            bar.close()
    return cells


# ------------------------------------------------------------------------------------------------ merge
def _resolve_rows(tiling: SlideTiling, read_record: Callable[[int], bytes]):
    """Yield the resolved :class:`Cell` list of each tile row, ids in the fixed order (see the module docstring).

    ``read_record(tile_id)`` returns the bytes :func:`tile_record` made for that tile.
    """
    from scipy import ndimage

    index = {rc: t for t, rc in enumerate(tiling.tiles)}
    rows = sorted({r for r, _ in tiling.tiles})
    cache: Dict[int, dict] = {}

    def load(tile_id: int) -> Optional[dict]:
        if tile_id not in cache:
            rec = _load_npz(read_record(tile_id))
            rec['key'] = np.full(len(rec['scores']), tile_id, np.int64)
            rec['idx'] = np.arange(len(rec['scores']), dtype=np.int64)
            cache[tile_id] = rec
        return cache[tile_id]

    next_id = 1
    for r in rows:
        for key in [k for k in cache if tiling.tiles[k][0] < r - 1]:
            del cache[key]
        row_cells: List[Cell] = []
        for c in sorted(c for rr, c in tiling.tiles if rr == r):
            tile_id = index[(r, c)]
            rec = load(tile_id)
            n = len(rec['scores'])
            if not n:
                continue
            neigh = [load(index[(r + dr, c + dc)]) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                     if (r + dr, c + dc) in index]
            nb = {k: np.concatenate([p[k] for p in neigh]) for k in ('boxes', 'scores', 'key', 'idx')}
            owner = [(p, i) for p in neigh for i in range(len(p['scores']))]
            order = sorted(range(n), key=lambda i: (-float(rec['scores'][i]), i))
            for i in order:
                s, box = rec['scores'][i], rec['boxes'][i]
                better = (nb['scores'] > s) | ((nb['scores'] == s) & (
                    (nb['key'] < tile_id) | ((nb['key'] == tile_id) & (nb['idx'] < i))))
                hits = np.flatnonzero(better & (nb['boxes'][:, 0] < box[2]) & (nb['boxes'][:, 2] > box[0])
                                      & (nb['boxes'][:, 1] < box[3]) & (nb['boxes'][:, 3] > box[1]))
                mask = _crop(rec, i)
                full = int(mask.sum())
                for j in hits:
                    p, k = owner[j]
                    other, ob = _crop(p, k), p['boxes'][k]
                    ox0, oy0 = max(box[0], ob[0]), max(box[1], ob[1])
                    ox1, oy1 = min(box[2], ob[2]), min(box[3], ob[3])
                    mask[oy0 - box[1]:oy1 - box[1], ox0 - box[0]:ox1 - box[0]] &= \
                        ~other[oy0 - ob[1]:oy1 - ob[1], ox0 - ob[0]:ox1 - ob[0]]
                if hits.size:
                    lab, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
                    if count > 1:
                        sizes = np.bincount(lab.ravel())[1:]
                        mask = lab == int(np.argmax(sizes)) + 1
                visible = int(mask.sum())
                if visible == 0 or visible < MIN_VISIBLE_FRACTION * full:
                    continue
                ys, xs = np.nonzero(mask)
                y0, x0 = int(ys.min()), int(xs.min())
                mask = mask[y0:int(ys.max()) + 1, x0:int(xs.max()) + 1]
                row_cells.append(Cell(id=next_id, label=int(rec['labels'][i]), score=float(s),
                                      x1=int(box[0]) + x0, y1=int(box[1]) + y0, mask=mask,
                                      means=tuple(float(v) for v in rec['means'][i])))
                next_id += 1
        yield row_cells


def _crop(rec: dict, i: int) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in rec['boxes'][i])
    h, w = y2 - y1, x2 - x1
    return np.unpackbits(rec['packed'][rec['offsets'][i]:rec['offsets'][i + 1]], count=h * w).reshape(h, w) > 0


def merge_slide(slide_dir: PathLike, progress: bool = True, dataset_meta: Optional[dict] = None) -> SlideResult:
    """Write the final files of a slide whose tiles are all finished (``mmcell merge-slide OUT/<stem>``).

    Args:
        slide_dir: ``OUT/<stem>`` (holding ``.work/``).
        progress: print a line per step.
        dataset_meta: class names / palette (default: those saved in the plan).

    Raises:
        SlideError: no plan in ``slide_dir``, tiles missing (one line with how many and which shards to run).
    """
    from mmcell.utils.fileio import atomic_write

    from .exporters import write_label_pyramid

    start = time.time()
    work = SlideWork(slide_dir)
    plan = work.read_plan()
    if plan is None:
        if (Path(slide_dir) / 'summary.json').is_file():
            raise SlideError(f'{slide_dir}: already merged (summary.json is there)')
        raise SlideError(f'{slide_dir}: no .work/plan.json here (run mmcell segment-slide first)')
    tiling = SlideTiling.from_json(plan['tiling'])
    finished = work.finished()
    missing = [t for t in range(len(tiling.tiles)) if t not in finished]
    if missing:
        raise SlideError(f'{slide_dir}: {len(missing)} of {len(tiling.tiles)} tiles are not finished yet '
                         f'(first: tile {missing[0]}); run the remaining shards, then merge again')
    args = plan['args']
    reader = SlideReader(plan['slide']['path'], mpp=plan['mpp'])
    tissue = tissue_mask(reader)
    if args.get('region'):
        tissue = tissue.restrict(args['region'])
    names, colors = class_names_colors(dataset_meta or plan.get('dataset_meta'))
    width, height = plan['dimensions']
    mpp = float(plan['mpp'])
    slide_key = f'{osp.basename(reader.path)}:{width}x{height}'
    preview = PreviewCanvas(tissue.thumbnail, tissue.downsample, colors, tissue.mask,
                            args.get('region'))
    counts = [0] * len(names)
    with atomic_dir(slide_dir, overwrite=True) as tmp:
        scratch = tmp / '.cells.bin'
        chunks: List[CellChunk] = []
        with CellWriter(str(tmp / 'cells.geojson.gz'), str(tmp / 'cells.csv.gz'), mpp, names, colors,
                        slide_key) as writer, open(scratch, 'wb') as sfh:
            for cells in _resolve_rows(tiling, lambda t: AppendLog.read_record(*finished[t])):
                for cell in cells:
                    row = writer.add(cell)
                    preview.add(row, cell.label)
                    counts[cell.label % len(counts)] += 1
                if cells:
                    buf = io.BytesIO()
                    np.savez(buf, **pack_cells(cells))
                    offset = sfh.tell()
                    sfh.write(buf.getvalue())
                    ymin = min(c.y1 for c in cells)
                    ymax = max(c.y1 + c.mask.shape[0] for c in cells)
                    chunks.append(CellChunk(ymin, ymax, _chunk_loader(scratch, offset, len(buf.getvalue()))))
            total = writer.count
        if progress:
            print(f'{reader.path}: {total} cells; writing labels.ome.tif ({width} x {height} px)', flush=True)
        atomic_write(tmp / 'labels.ome.tif', lambda p: write_label_pyramid(p, width, height, chunks, mpp))
        scratch.unlink()
        atomic_write_bytes(tmp / 'preview.png', preview.png())
        summary = dict(slide=reader.path, stem=slide_stem(reader.path), dimensions=[width, height], mpp=mpp,
                       model_mpp=args['model_mpp'], tile=args['tile'], overlap=args['overlap'],
                       score_thr=args['score_thr'], region=args.get('region'),
                       tissue_mm2=round(plan['tissue_mm2'], 6), tiles=len(tiling.tiles), cells=total,
                       cells_per_class=dict(zip(names, counts)),
                       files=['cells.geojson.gz', 'cells.csv.gz', 'labels.ome.tif', 'preview.png'])
        write_json(tmp / 'summary.json', summary, indent=2)
    reader.close()
    out = Path(slide_dir)
    return SlideResult(slide=reader.path, out_dir=str(out), status='done', cells=total,
                       tissue_mm2=plan['tissue_mm2'], tiles=len(tiling.tiles), seconds=time.time() - start,
                       files={k: str(out / v) for k, v in (('geojson', 'cells.geojson.gz'),
                                                            ('table', 'cells.csv.gz'), ('labels', 'labels.ome.tif'),
                                                            ('preview', 'preview.png'),
                                                            ('summary', 'summary.json'))})


def _chunk_loader(path: Path, offset: int, length: int):
    def load() -> dict:
        with open(path, 'rb') as fh:
            fh.seek(offset)
            return _load_npz(fh.read(length))
    return load


# ------------------------------------------------------------------------------------------------ the API
def segment_slide(slides: Union[PathLike, Sequence[PathLike]], config: Any, checkpoint: Optional[str],
                  out_dir: PathLike, mpp: Optional[float] = None, tile: int = 1024, overlap: int = 128,
                  batch_size: Optional[int] = None, score_thr: float = LABEL_SCORE_THR,
                  region: Optional[Sequence[int]] = None, device: str = 'cpu',
                  shard: Optional[Union[str, Tuple[int, int]]] = None, overwrite: bool = False,
                  num_workers: Optional[int] = None, progress: bool = True, cfg_options: Optional[dict] = None,
                  model: Optional[torch.nn.Module] = None, trust_checkpoint: bool = False) -> List[SlideResult]:
    """Segment every nucleus of whole-slide images (see the module docstring for the steps and files).

    Args:
        slides: slide files (SVS, OME-TIFF, tiled TIFF, plain TIFF/PNG).
        config, checkpoint: the model (``config`` may be a ``Config``); ignored when ``model`` is given.
        out_dir: results go to ``out_dir/<stem>/``.
        mpp: microns per level-0 pixel; overrides the slide's metadata (needed when it has none).
        tile, overlap: tile side and overlap in pixels at the model's mpp (overlap >= twice the largest nucleus).
        batch_size: tiles per forward pass (default 2 on CPU, 8 on GPU).
        score_thr: cells scoring below are left out.
        region: ``(x, y, w, h)`` in level-0 px: only this part of the slide (outputs keep slide coordinates).
        device: ``'cpu'`` or ``'cuda:0'`` (under torchrun each rank takes ``cuda:LOCAL_RANK``).
        shard: ``'I/N'`` or ``(I, N)``: do every N-th tile from the I-th and stop (then ``merge_slide``).
        overwrite: redo finished slides and discard unfinished work of other settings.
        num_workers: DataLoader workers reading tiles (default 1).
        progress: progress bars and a line per slide.
        cfg_options: config overrides.
        model: an already built model (from :func:`build_inference_model`) instead of config + checkpoint.
        trust_checkpoint: load a checkpoint that ``weights_only`` refuses (it can run code; see
            :mod:`mmcell.utils.checkpoint`).

    Returns:
        one :class:`SlideResult` per slide (on torchrun ranks other than 0: what that rank did).

    Raises:
        SlideError, OutputPathError, ValueError: one line naming the file or flag.
    """
    from mmcell.datasets.slide import worker_count
    from mmcell.utils import init_dist_from_env, load_config, register_all_modules

    register_all_modules()  # the tile pipeline is built from mmdet's registries

    paths = [str(slides)] if isinstance(slides, (str, os.PathLike)) else [str(s) for s in slides]
    if not paths:
        raise ValueError('segment-slide: no slide given')
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    rank, world = init_dist_from_env(timeout_s=24 * 3600)
    if shard is not None and world > 1:
        raise ValueError(f'--shard {shard[0]}/{shard[1]}: use either --shard or torchrun, not both')
    part_index, part_count = shard if shard is not None else (rank, world)
    out_root = check_output_path(out_dir, is_dir=True)
    for path in paths:  # fail on the first bad slide before any long work
        reader = SlideReader(path, mpp=mpp)
        reader.close()
        if reader.mpp is None:
            raise SlideError(f'{path}: no microns per pixel in its metadata; pass --mpp (e.g. --mpp 0.25)')
        if mpp is not None and reader.metadata_mpp and abs(mpp / reader.metadata_mpp - 1) > 0.05 and progress:
            print(f'{path}: --mpp {mpp:g} overrides the metadata ({reader.metadata_mpp:g} um/px)', flush=True)
    if model is None:
        cfg = load_config(config, cfg_options)
        if world > 1 and str(device).startswith('cuda'):
            device = f'cuda:{os.environ.get("LOCAL_RANK", "0")}'
    else:
        cfg = model.cfg
    model_mpp = model_mpp_of(cfg)
    batch_size = batch_size or (8 if str(device).startswith('cuda') else 2)
    num_workers = worker_count(num_workers)
    results = []
    for path in paths:
        stem = slide_stem(path)
        slide_dir = out_root / stem
        if (slide_dir / 'summary.json').is_file() and not overwrite:
            if progress and rank == 0:
                print(f'{path}: finished before ({slide_dir}); skipped (pass --overwrite to redo it)', flush=True)
            results.append(SlideResult(path, str(slide_dir), 'skipped'))
            continue
        start = time.time()
        reader = SlideReader(path, mpp=mpp)
        if reader.mpp is None:
            raise SlideError(f'{path}: no microns per pixel in its metadata; pass --mpp (e.g. --mpp 0.25)')
        tissue = tissue_mask(reader)
        if region is not None:
            tissue = tissue.restrict(tuple(int(v) for v in region))
        tiling = plan_tiles(reader, model_mpp, tile, overlap, tissue, region)
        args = dict(model_mpp=model_mpp, tile=tile, overlap=overlap, score_thr=score_thr,
                    region=[int(v) for v in region] if region is not None else None,
                    config=_abs(getattr(cfg, 'filename', None) or config), checkpoint=_checkpoint_key(checkpoint))
        plan = _plan(reader, tiling, args, tissue.area_mm2)
        work = SlideWork(slide_dir)
        if overwrite and shard is None and rank == 0 and work.dir.exists():  # shards never delete others' work
            import shutil
            shutil.rmtree(work.dir)
        _barrier(world)
        old = work.read_plan()
        if old is not None:
            why = _same_plan(old, plan)
            if why:
                raise SlideError(f'{work.dir}: holds an unfinished run with other settings ({why}); pass '
                                 '--overwrite to start again')
        if model is None:
            from .segment import build_inference_model

            model = build_inference_model(cfg, checkpoint, device=device, fast=True, mask_format='rle',
                                          cfg_options=detection_limits(cfg, tile), trust_checkpoint=trust_checkpoint)
        plan['dataset_meta'] = _jsonable_meta(getattr(model, 'dataset_meta', None))
        if old is None and rank == 0:
            write_json(work.plan_file, plan, indent=1)
        _barrier(world)
        finished = work.finished()
        mine = [t for t in range(len(tiling.tiles)) if t % part_count == part_index and t not in finished]
        if progress and rank == 0:
            print(f'{path}: {reader.dimensions[0]} x {reader.dimensions[1]} px at {reader.mpp:g} um/px, '
                  f'{tissue.area_mm2:.3f} mm2 tissue, {len(tiling.tiles)} tiles of {tile} px at {model_mpp:g} '
                  f'um/px ({len(finished)} done before)', flush=True)
        part = f'{part_index}of{part_count}'
        cells = 0
        if mine:
            with work.log_for(part) as log:
                cells = _run_tiles(model, reader, tiling, mine, log, score_thr, batch_size, num_workers,
                                   progress and (rank == 0 or shard is not None), f'{stem} [{part}]')
        reader.close()
        result = SlideResult(path, str(slide_dir), 'shard done', cells=cells, tissue_mm2=tissue.area_mm2,
                             tiles=len(tiling.tiles), tiles_run=len(mine), seconds=time.time() - start)
        if shard is not None:
            if progress:
                print(f'{path}: shard {part_index}/{part_count} finished {len(mine)} tiles; when every shard is '
                      f'done: mmcell merge-slide {slide_dir}', flush=True)
            results.append(result)
            continue
        _barrier(world)
        if rank == 0:
            merged = merge_slide(slide_dir, progress=progress, dataset_meta=plan['dataset_meta'])
            merged.tiles_run, merged.seconds = len(mine), time.time() - start
            result = merged
            if progress:
                print(f'{path}: {merged.cells} cells in {merged.seconds:.1f} s -> {slide_dir}', flush=True)
        _barrier(world)
        results.append(result)
    return results


def whole_image_cells(slide: str, config: Any, checkpoint: Optional[str], score_thr: float = LABEL_SCORE_THR,
                      region: Optional[Sequence[int]] = None, mpp: Optional[float] = None,
                      device: str = 'cpu') -> Tuple[np.ndarray, np.ndarray, Dict[int, float]]:
    """The reference for the seams: the model run once on a whole region (default: the whole slide) held in memory,
    read, resampled and post-processed (overlaps, duplicates) exactly as the tiles are, so that a difference from
    the slide path comes from tiling alone.

    Returns ``(ids, classes, scores)``: region-sized label image and class map (level-0 px) and ``id -> score``.
    """
    from mmcell.datasets.slide import SlideTileDataset
    from mmcell.utils import load_config, register_all_modules

    from .segment import build_inference_model

    register_all_modules()
    reader = SlideReader(slide, mpp=mpp)
    if reader.mpp is None:
        raise SlideError(f'{slide}: no microns per pixel in its metadata; pass --mpp (e.g. --mpp 0.25)')
    cfg = load_config(config)
    model_mpp = model_mpp_of(cfg)
    rx, ry, rw, rh = region if region is not None else (0, 0, *reader.dimensions)
    side = int(math.ceil(max(rw, rh) * reader.mpp / model_mpp))
    tiling = plan_tiles(reader, model_mpp, side, 0, None, (rx, ry, rw, rh))
    model = build_inference_model(cfg, checkpoint, device=device, fast=True, mask_format='rle',
                                  cfg_options=detection_limits(cfg, side))
    pipeline = (model.cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')
                or model.cfg.get('test_pipeline'))
    item = SlideTileDataset(reader, tiling, [0], pipeline)[0]
    if 'error' in item:
        raise SlideError(item['error'])
    with torch.no_grad():
        out = model.test_step(dict(inputs=[item['inputs']], data_samples=[item['data_samples']]))[0].cpu()
    record, _ = tile_record(out, tiling, 0, score_thr, item['rgb'])
    ids = np.zeros((rh, rw), np.uint32)
    classes = np.zeros((rh, rw), np.uint8)
    scores = {}
    for cells in _resolve_rows(tiling, lambda t: record):
        for c in cells:
            h, w = c.mask.shape
            ids[c.y1 - ry:c.y1 - ry + h, c.x1 - rx:c.x1 - rx + w][c.mask] = c.id
            classes[c.y1 - ry:c.y1 - ry + h, c.x1 - rx:c.x1 - rx + w][c.mask] = c.label + 1
            scores[c.id] = c.score
    return ids, classes, scores


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist
        dist.barrier()


def _abs(path: Any) -> Optional[str]:
    if path is None:
        return None
    return osp.abspath(str(path)) if osp.isfile(str(path)) else str(path)


def _checkpoint_key(checkpoint: Optional[str]) -> Optional[dict]:
    if checkpoint is None or not osp.isfile(str(checkpoint)):
        return None
    st = os.stat(checkpoint)
    return dict(path=osp.abspath(checkpoint), size=st.st_size)


def _jsonable_meta(meta: Optional[dict]) -> Optional[dict]:
    if not meta:
        return None
    return dict(classes=list(meta.get('classes', ())), palette=[list(map(int, c)) for c in meta.get('palette', ())])


__all__ = ['segment_slide', 'merge_slide', 'whole_image_cells', 'SlideResult', 'parse_shard', 'model_mpp_of',
           'OutputPathError']
