"""The merge of a segmented slide: cells resolved in a fixed order (tile by tile, score first): each keeps the pixels no
better-scoring overlapping cell has, its largest connected part, and is dropped if less than
:data:`MIN_VISIBLE_FRACTION` of its mask is left (the duplicate of a neighbour's cell). Ids follow that order, so
every run (1 or N processes, resumed or not) gives the same ids. The exporters stream the outputs into a temp folder
that replaces ``OUT/<stem>/`` at the end."""
from __future__ import annotations

import io
import os.path as osp
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
from scipy import ndimage

from mmcell.apis.slide.records import SlideResult, SlideWork, _load_npz
from mmcell.datasets.slide.reader import SlideError, SlideReader, slide_stem
from mmcell.datasets.slide.tiling import SlideTiling
from mmcell.datasets.slide.tissue import tissue_mask
from mmcell.exporters.cells import CellWriter, DetectionWriter, class_names_colors, geojson_metadata
from mmcell.exporters.preview import PreviewCanvas
from mmcell.exporters.pyramid import write_label_pyramid
from mmcell.structures.cells import Cell, CellChunk, pack_cells
from mmcell.utils.errors import PathLike
from mmcell.utils.fileio import (
    AppendLog,
    atomic_dir,
    atomic_write,
    atomic_write_bytes,
    write_json,
)

MIN_VISIBLE_FRACTION = 0.5  # a cell keeping less of its mask than this after overlaps is a duplicate: dropped


# ------------------------------------------------------------------------------------------------ merge
def _resolve_rows(tiling: SlideTiling, read_record: Callable[[int], bytes], score_thr: float = 0.0):
    """Yield the resolved :class:`Cell` list of each tile row, ids in the fixed order (see the module docstring).

    ``read_record(tile_id)`` returns the bytes :func:`tile_record` made for that tile; only its cells scoring at
    least ``score_thr`` take part (records of a ``detections`` run hold every detection).
    """

    index = {rc: t for t, rc in enumerate(tiling.tiles)}
    rows = sorted({r for r, _ in tiling.tiles})
    cache: Dict[int, dict] = {}

    def load(tile_id: int) -> Optional[dict]:
        if tile_id not in cache:
            rec = _select(_load_npz(read_record(tile_id)), score_thr)
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
                margin = (float(rec['margins'][i]), int(rec['runner_up'][i])) if 'margins' in rec else \
                    (float('nan'), -1)
                row_cells.append(Cell(id=next_id, label=int(rec['labels'][i]), score=float(s),
                                      x1=int(box[0]) + x0, y1=int(box[1]) + y0, mask=mask,
                                      means=tuple(float(v) for v in rec['means'][i]), margin=margin[0],
                                      runner_up=margin[1]))
                next_id += 1
        yield row_cells


def _select(rec: dict, score_thr: float) -> dict:
    """A tile record with only its cells scoring at least ``score_thr``."""
    keep = np.flatnonzero(rec['scores'] >= score_thr)
    if len(keep) == len(rec['scores']):
        return rec
    parts = [rec['packed'][rec['offsets'][i]:rec['offsets'][i + 1]] for i in keep]
    offsets = np.zeros(len(keep) + 1, np.int64)
    offsets[1:] = np.cumsum([len(p) for p in parts]) if parts else []
    return dict(rec, boxes=rec['boxes'][keep], scores=rec['scores'][keep], labels=rec['labels'][keep],
                means=rec['means'][keep], offsets=offsets,
                packed=np.concatenate(parts) if parts else np.zeros(0, np.uint8))


def _write_detections(path: Path, tiling: SlideTiling, read_record: Callable[[int], bytes], height: int,
                      width: int) -> int:
    """Every detection of the tile records (tile by tile, score first) into ``detections.json.gz``
    (:class:`DetectionWriter`): own masks, overlaps kept. Returns the count."""
    with DetectionWriter(str(path), height, width) as writer:
        for tile_id in range(len(tiling.tiles)):
            rec = _load_npz(read_record(tile_id))
            for i in sorted(range(len(rec['scores'])), key=lambda i: (-float(rec['scores'][i]), i)):
                writer.add(rec['boxes'][i][0], rec['boxes'][i][1], _crop(rec, i), rec['scores'][i], rec['labels'][i])
        return writer.count


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
    reader = SlideReader(plan['slide']['path'], mpp=plan['mpp'], reader=args.get('reader', 'auto'))
    tissue = tissue_mask(reader)
    if args.get('region'):
        tissue = tissue.restrict(args['region'])
    names, colors = class_names_colors(dataset_meta or plan.get('dataset_meta'))
    width, height = plan['dimensions']
    mpp = float(plan['mpp'])
    slide_key = f'{osp.basename(reader.path)}:{width}x{height}'
    preview = PreviewCanvas(tissue.thumbnail, tissue.downsample, colors, tissue.mask,
                            args.get('region'), names=names)
    counts = [0] * len(names)
    with atomic_dir(slide_dir, overwrite=True) as tmp:
        scratch = tmp / '.cells.bin'
        chunks: List[CellChunk] = []
        metadata = geojson_metadata(config=args.get('config'), checkpoint=(args.get('checkpoint') or {}).get('path'),
                                    slide=osp.basename(reader.path), mpp=mpp, model_mpp=args.get('model_mpp'),
                                    score_thr=args.get('score_thr'), classes=list(names))
        review_below = args.get('review_below')
        files = ['cells.geojson.gz', 'cells.csv.gz', 'labels.ome.tif', 'preview.png']
        if review_below is not None:
            files.append('review.geojson')
        detections = None
        if args.get('detections'):
            files.append('detections.json.gz')
            detections = _write_detections(tmp / 'detections.json.gz', tiling,
                                           lambda t: AppendLog.read_record(*finished[t]), height, width)
        with CellWriter(str(tmp / 'cells.geojson.gz'), str(tmp / 'cells.csv.gz'), mpp, names, colors,
                        slide_key, metadata, review_path=str(tmp / 'review.geojson'),
                        review_below=review_below, review_margin=args.get('review_margin')) as writer, \
                open(scratch, 'wb') as sfh:
            for cells in _resolve_rows(tiling, lambda t: AppendLog.read_record(*finished[t]),
                                       float(args.get('score_thr') or 0.0)):
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
            total, to_review, reasons = writer.count, writer.review_count, dict(writer.review_reasons)
        if progress:
            print(f'{reader.path}: {total} cells; writing labels.ome.tif ({width} x {height} px)', flush=True)
        atomic_write(tmp / 'labels.ome.tif', lambda p: write_label_pyramid(p, width, height, chunks, mpp))
        scratch.unlink()
        atomic_write_bytes(tmp / 'preview.png', preview.png())
        summary = dict(slide=reader.path, stem=slide_stem(reader.path), dimensions=[width, height], mpp=mpp,
                       model_mpp=args['model_mpp'], tile=args['tile'], overlap=args['overlap'],
                       score_thr=args['score_thr'], region=args.get('region'),
                       tissue_mm2=round(plan['tissue_mm2'], 6), tiles=len(tiling.tiles), cells=total,
                       cells_per_class=dict(zip(names, counts)), files=files)
        if review_below is not None:
            summary.update(review_below=review_below, cells_to_review=to_review,
                           cells_to_review_low_score=reasons['score'])
            if args.get('review_margin') is not None:
                summary.update(review_margin=args['review_margin'], cells_to_review_uncertain_class=reasons['class'])
        if detections is not None:
            summary['detections'] = detections
        if plan.get('inference'):  # the precision and engine the tiles ran in (resolved, e.g. from auto)
            summary['inference'] = plan['inference']
        write_json(tmp / 'summary.json', summary, indent=2)
    reader.close()
    out = Path(slide_dir)
    return SlideResult(slide=reader.path, out_dir=str(out), status='done', cells=total,
                       tissue_mm2=plan['tissue_mm2'], tiles=len(tiling.tiles), seconds=time.time() - start,
                       files={k: str(out / v) for k, v in (('geojson', 'cells.geojson.gz'),
                                                            ('table', 'cells.csv.gz'), ('labels', 'labels.ome.tif'),
                                                            ('preview', 'preview.png'),
                                                            ('summary', 'summary.json'),
                                                            ('detections', 'detections.json.gz'))
                              if v in files or v == 'summary.json'})


def _chunk_loader(path: Path, offset: int, length: int):
    def load() -> dict:
        with open(path, 'rb') as fh:
            fh.seek(offset)
            return _load_npz(fh.read(length))
    return load


