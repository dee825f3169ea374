"""``mmcell.apis.segment_slide`` (the orchestration): whole-slide images in, QuPath-ready cells out (the API behind
``mmcell segment-slide`` and ``mmcell merge-slide``).

For each slide, into ``OUT/<stem>/``:

1. **Plan.** Open the slide (:class:`mmcell.datasets.slide.SlideReader`), find the tissue on a thumbnail, lay out tiles
   of ``tile`` px at the model's mpp (config key ``model_mpp``) overlapping by ``overlap`` px and keep those with
   tissue; the plan is saved in ``.work/plan.json``.
2. **Tiles.** DataLoader workers read + resample + pre-process tiles; the model (:func:`init_cell_model`, fast path, RLE
   masks) predicts batches of them, boxes and masks rescaled to level-0 pixels. A detection belongs to the one tile
   whose core holds its box centre (:func:`mmcell.structures.tiling.in_core`, the rule of :class:`TiledDetector`); each
   finished tile is appended to a per-process log (``.work/tiles-*.bin`` + ``.jsonl`` manifest,
   :class:`mmcell.utils.fileio.AppendLog`), so a killed run continues where it stopped. Ranks of torchrun (or ``--shard
   I/N`` jobs) take every N-th tile (:mod:`.records`).
3. **Merge** (:mod:`.merge`). Cells are resolved in a fixed order (tile by tile, score first): each keeps the pixels no
   better-scoring overlapping cell has, its largest connected part, and is dropped if less than
   :data:`~mmcell.apis.slide.merge.MIN_VISIBLE_FRACTION` of its mask is left (the duplicate of a neighbour's cell). Ids
   are given in that order, so every run (1 or N processes, resumed or not) gives the same ids. The exporters
   (:mod:`mmcell.exporters`) stream ``cells.geojson.gz``, ``cells.csv.gz``, ``labels.ome.tif`` and ``preview.png`` into
   a temp folder that replaces ``OUT/<stem>/`` at the end (with ``summary.json``): final files appear together, or not
   at all."""
from __future__ import annotations

import hashlib
import json
import math
import os
import os.path as osp
import shutil
import time
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
from tqdm import tqdm

from mmcell.apis.builder import build_test_pipeline, init_cell_model
from mmcell.apis.slide.merge import merge_slide
from mmcell.apis.slide.records import SlideResult, SlideWork, _file_key, _jsonable_meta, tile_record
from mmcell.datasets.slide.reader import SlideError, SlideReader, slide_stem
from mmcell.datasets.slide.tile_dataset import SlideTileDataset, collate_tiles, die_with_parent, worker_count
from mmcell.datasets.slide.tiling import SlideTiling, plan_tiles
from mmcell.datasets.slide.tissue import tissue_mask
from mmcell.evaluation.submission import LABEL_SCORE_THR
from mmcell.exporters.cells import REVIEW_MARGIN
from mmcell.utils import init_dist_from_env, load_config, register_all_modules
from mmcell.utils.fileio import (
    AppendLog,
    check_output_path,
    write_json,
)
from mmcell.utils.setup_env import check_device

DEFAULT_MODEL_MPP = 0.25  # configs without ``model_mpp``: HW3 / MoNuSAC crops are 40x scans (~0.25 um/px)
CELLS_PER_MEGAPIXEL = 2000  # detection limits per tile (RPN proposals and final boxes) scale with its area
PLAN_VERSION = 2  # 2: the stain statistics of the tile records are QuPath's optical densities (issue 25)
# model variant a plan does not need to record
_DEFAULT_VARIANT = dict(fast=True, tta=False, tta_scales=None, engine='torch')
PathLike = Union[str, os.PathLike]


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
    dataset = SlideTileDataset(reader, tiling, tile_ids, build_test_pipeline(model.cfg, compose=False))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                         collate_fn=collate_tiles, shuffle=False, worker_init_fn=die_with_parent,
                                         prefetch_factor=2 if num_workers else None)
    bar = None
    if progress:
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


# ------------------------------------------------------------------------------------------------ the API
def segment_slide(slides: Union[PathLike, Sequence[PathLike]], config: Any, checkpoint: Optional[str],
                  out_dir: PathLike, mpp: Optional[float] = None, tile: int = 1024, overlap: int = 128,
                  batch_size: Optional[int] = None, score_thr: float = LABEL_SCORE_THR,
                  region: Optional[Sequence[int]] = None, device: str = 'cpu',
                  shard: Optional[Union[str, Tuple[int, int]]] = None, overwrite: bool = False,
                  num_workers: Optional[int] = None, progress: bool = True, cfg_options: Optional[dict] = None,
                  model: Optional[torch.nn.Module] = None, trust_checkpoint: bool = False, reader: str = 'auto',
                  review_below: Optional[float] = None, review_margin: Optional[float] = REVIEW_MARGIN,
                  detections: bool = False,
                  **model_kwargs: Any) -> List[SlideResult]:
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
        model: an already built model (from :func:`init_cell_model`) instead of config + checkpoint.
        review_below: also write ``review.geojson``: the cells scoring below this as classified QuPath annotations,
            to correct in QuPath (only cells kept by ``score_thr`` are there: pass a lower ``score_thr``).
        review_margin: with ``review_below``, also the cells whose class is uncertain: the box head's score of their
            class minus its best other class score is below this (models of several classes, fast modules;
            None: by score only). Each review annotation is named for why.
        detections: also write ``detections.json.gz``: every detection the model returns (its own
            ``test_cfg`` score floor, not ``score_thr``) with its own mask, overlaps kept, seams resolved by the tile
            cores only (:class:`mmcell.exporters.DetectionWriter`): what ``tools/predict.py`` writes for a tile, to
            score a slide the way tiles are scored (AP ranks every detection; the label image and tables keep only
            the cells of ``score_thr``, each pixel to one cell).
        reader: the slide backend, ``'auto'`` (by what opens the file), ``'tiffslide'`` or ``'openslide'``
            (:class:`mmcell.datasets.slide.SlideReader`); recorded in the plan when not ``'auto'``.
        trust_checkpoint: load a checkpoint that ``weights_only`` refuses (it can run code; see
            :mod:`mmcell.utils.checkpoint`).
        **model_kwargs: the model variant, as :func:`mmcell.apis.builder.init_cell_model` takes it (``fast``,
            ``tta``, ``tta_scales``, ...; the flags of ``add_model_args``). A variant other than the default is part
            of the plan: a resumed run never mixes tiles of two variants.

    Returns:
        one :class:`SlideResult` per slide (on torchrun ranks other than 0: what that rank did).

    Raises:
        SlideError, OutputPathError, ValueError: one line naming the file or flag.
    """

    register_all_modules()  # the tile pipeline is built from mmdet's registries

    check_device(device)
    if review_below is not None and review_margin is not None and not 0 <= review_margin <= 1:
        raise ValueError(f'--review-margin {review_margin:g}: a difference of two class scores, between 0 and 1 '
                         '(0: review by score only)')
    reader_name = reader
    paths = [str(slides)] if isinstance(slides, (str, os.PathLike)) else [str(s) for s in slides]
    if not paths:
        raise ValueError('segment-slide: no slide given')
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    rank, world = init_dist_from_env(timeout_s=24 * 3600)
    if shard is not None and world > 1:
        raise ValueError(f'--shard {shard[0]}/{shard[1]}: use either --shard or torchrun, not both')
    part_index, part_count = shard if shard is not None else (rank, world)
    if 'tile' in model_kwargs or 'tile_overlap' in model_kwargs:
        raise ValueError('segment-slide: the slide is already cut into tiles (--tile is the slide tile size); '
                         'the TiledDetector wrapper does not apply')
    if model is None:  # a bad config is one line before anything else is read
        cfg = load_config(config, cfg_options)
        if world > 1 and str(device).startswith('cuda'):
            device = f'cuda:{os.environ.get("LOCAL_RANK", "0")}'
    else:
        cfg = model.cfg
    out_root = check_output_path(out_dir, is_dir=True)
    for path in paths:  # fail on the first bad slide before any long work
        reader = SlideReader(path, mpp=mpp, reader=reader_name)
        reader.close()
        if reader.mpp is None:
            raise SlideError(f'{path}: no microns per pixel in its metadata; pass --mpp (e.g. --mpp 0.25)')
        if mpp is not None and reader.metadata_mpp and abs(mpp / reader.metadata_mpp - 1) > 0.05 and progress:
            print(f'{path}: --mpp {mpp:g} overrides the metadata ({reader.metadata_mpp:g} um/px)', flush=True)
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
        reader = SlideReader(path, mpp=mpp, reader=reader_name)
        if reader.mpp is None:
            raise SlideError(f'{path}: no microns per pixel in its metadata; pass --mpp (e.g. --mpp 0.25)')
        tissue = tissue_mask(reader)
        if region is not None:
            tissue = tissue.restrict(tuple(int(v) for v in region))
        tiling = plan_tiles(reader, model_mpp, tile, overlap, tissue, region)
        args = dict(model_mpp=model_mpp, tile=tile, overlap=overlap, score_thr=score_thr,
                    region=[int(v) for v in region] if region is not None else None,
                    config=_abs(getattr(cfg, 'filename', None) or config), checkpoint=_checkpoint_key(checkpoint))
        variant = {k: v for k, v in model_kwargs.items() if v != _DEFAULT_VARIANT.get(k)}
        if variant:
            args['model_variant'] = variant
        if reader_name != 'auto':
            args['reader'] = reader_name
        if review_below is not None:
            args['review_below'] = float(review_below)
            if review_margin is not None:
                args['review_margin'] = float(review_margin)
        if detections:
            args['detections'] = True
        plan = _plan(reader, tiling, args, tissue.area_mm2)
        work = SlideWork(slide_dir)
        if overwrite and shard is None and rank == 0 and work.dir.exists():  # shards never delete others' work
            shutil.rmtree(work.dir)
        _barrier(world)
        old = work.read_plan()
        if old is not None:
            why = _same_plan(old, plan)
            if why:
                raise SlideError(f'{work.dir}: holds an unfinished run with other settings ({why}); pass '
                                 '--overwrite to start again')
        if model is None:
            model = init_cell_model(cfg, checkpoint, device=device, **{'fast': True, **model_kwargs},
                                    mask_format='rle', cfg_options=detection_limits(cfg, tile),
                                    trust_checkpoint=trust_checkpoint)
        plan['dataset_meta'] = _jsonable_meta(getattr(model, 'dataset_meta', None))
        # what --precision / --engine resolved to on this machine (auto: the CPU's kind), for summary.json
        if model.cfg.get('precision'):
            plan['inference'] = dict(precision=model.cfg.precision, engine=model.cfg.get('engine', 'torch'))
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
                # a detections run keeps every detection in its records; the merge applies score_thr to the cells
                cells = _run_tiles(model, reader, tiling, mine, log, 0.0 if detections else score_thr, batch_size,
                                   num_workers, progress and (rank == 0 or shard is not None), f'{stem} [{part}]')
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


def _barrier(world: int) -> None:
    if world > 1:
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


__all__ = ['segment_slide', 'SlideResult', 'parse_shard', 'model_mpp_of']
