"""Slide vs tile accuracy: the same labelled tiles and checkpoint through ``tools/predict.py``'s path (the config's
test pipeline on the image) and through ``mmcell segment-slide`` (each tile written as a slide), scored by the same
code (:func:`mmcell.apis.evaluate.score_tile_samples`: AP50 / AP at maxDets 1000; AJI, AJI+, PQ of the cells
scoring >= 0.5). Figures go to benchmarks/RESULTS.md, "Slide vs tile accuracy".

    # one unit of work per fold (the fold's model on its held-out tiles; predictions kept in WORK)
    python benchmarks/slide_vs_tile.py --data-root /tmp/monuseg --cv-results benchmarks/results/monuseg_cv/RUN \\
        --cv-work /tmp/cv/work/RUN --work-dir /tmp/slide_vs_tile --fold 0 [--variants tile slide ...]
    # pool the folds done so far, print the table, write RESULTS/<tag>.json
    python benchmarks/slide_vs_tile.py --work-dir /tmp/slide_vs_tile --data-root /tmp/monuseg --score \\
        [--results benchmarks/results/slide_vs_tile --tag before]

Variants (an ablation: each differs from the one before in one step of the slide path):

- ``tile``: the tile path (:func:`mmcell.apis.predict.predict_images`, the config's resize), every detection.
- ``tile-merged``: those predictions through the slide's records + merge (score floor ``--low-thr``, holes filled,
  overlaps to the better score, duplicates dropped): what the slide's post-processing does alone.
- ``whole``: the slide's reader + resampling to ``model_mpp`` and its tile pipeline, the tile in one pass
  (:func:`mmcell.apis.slide.reference.whole_image_cells`), same post-processing: what reading/resampling does.
- ``slide-lowthr``: ``segment_slide`` (``--tile`` / ``--overlap`` seams), score floor ``--low-thr``: what tiling does.
- ``slide``: ``segment_slide`` as a user runs it (default ``--score-thr``): its label image and table.
- ``slide-detections``: the same run's ``detections.json.gz`` (``--detections``): every detection with its own mask,
  as the tile path's contest file holds them.
- ``tile-limits``: the tile path with the detection limits ``segment-slide`` gives a tile of the network input's
  size (:func:`mmcell.apis.slide.run.detection_limits`: RPN proposals and boxes per megapixel), to compare with
  ``slide-detections`` at equal limits.

``--score`` adds two rows made from the ``tile`` predictions: ``tile >= 0.5`` (the score floor of the label outputs)
and ``tile label image >= 0.5`` (painted as ``mmcell segment`` writes it): the same cuts on the tile path.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import gzip
import json
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import tifffile
import torch

from mmcell.apis.builder import init_cell_model
from mmcell.apis.evaluate import TILE_FIGURES, label_image_instances, score_tile_samples, tile_ground_truth
from mmcell.apis.predict import predict_images
from mmcell.apis.slide import segment_slide
from mmcell.apis.slide.records import tile_record
from mmcell.apis.slide.reference import resolved_label_image, whole_image_cells
from mmcell.apis.slide.run import detection_limits, model_mpp_of
from mmcell.datasets.image_io import read_image
from mmcell.datasets.slide.reader import SlideReader
from mmcell.datasets.slide.tiling import plan_tiles
from mmcell.evaluation.submission import LABEL_SCORE_THR
from mmcell.structures.label_image import label_image
from mmcell.synthetic.slide import read_ground_truth
from mmcell.utils import load_config
from mmcell.utils.errors import ToolArgumentParser
from mmcell.utils.fileio import atomic_write_text
from mmcell.utils.precision import cpu_name

VARIANTS = ('tile', 'tile-merged', 'whole', 'slide-lowthr', 'slide', 'slide-detections', 'tile-limits')


def write_slide(rgb: np.ndarray, path: Path, mpp: float) -> str:
    """An image as a tiled (lossless) TIFF with its microns per pixel in the resolution tags: a slide
    :class:`~mmcell.datasets.slide.SlideReader` opens."""
    tifffile.imwrite(path, rgb, photometric='rgb', tile=(256, 256), compression='zlib',
                     resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit='CENTIMETER', metadata=None)
    return str(path)


def instances_json(inst: dict) -> dict:
    masks = [dict(size=list(m['size']), counts=m['counts'] if isinstance(m['counts'], str) else m['counts'].decode())
             for m in inst['masks']]
    return dict(bboxes=np.asarray(inst['bboxes'], np.float64).tolist(),
                scores=np.asarray(inst['scores'], np.float64).tolist(), masks=masks)


def instances_of_json(d: dict) -> dict:
    return dict(bboxes=torch.tensor(d['bboxes'], dtype=torch.float32).reshape(-1, 4),
                scores=torch.tensor(d['scores'], dtype=torch.float32),
                labels=torch.zeros(len(d['scores']), dtype=torch.int64), masks=d['masks'])


def slide_outputs(slide_dir: Path) -> dict:
    ids, _ = read_ground_truth(slide_dir / 'labels.ome.tif')
    with gzip.open(slide_dir / 'cells.csv.gz', 'rt', newline='') as fh:
        scores = {int(r['id']): float(r['score']) for r in csv.DictReader(fh)}
    return label_image_instances(ids, scores)


def slide_detections(slide_dir: Path) -> dict:
    with gzip.open(slide_dir / 'detections.json.gz', 'rt') as fh:
        entries = json.load(fh)
    return dict(bboxes=[[e['bbox'][0], e['bbox'][1], e['bbox'][0] + e['bbox'][2], e['bbox'][1] + e['bbox'][3]]
                        for e in entries], scores=[e['score'] for e in entries],
                masks=[e['segmentation'] for e in entries])


def fold_model(args, fold: int):
    result = json.loads((Path(args.cv_results) / f'fold{fold}.json').read_text())
    work = Path(args.cv_work) / f'fold{fold}'
    config = str(next(work.glob('*.py')))
    checkpoint = (work / 'last_checkpoint').read_text().strip()
    if not Path(checkpoint).is_file():
        checkpoint = str(work / Path(checkpoint).name)
    return result['val_names'], config, checkpoint


def run_fold(args) -> None:
    names, config, checkpoint = fold_model(args, args.fold)
    work = Path(args.work_dir)
    slides = work / 'slides'
    slides.mkdir(parents=True, exist_ok=True)
    paths = [write_slide(read_image(Path(args.data_root) / 'train' / n / 'image.tif'), slides / f'{n}.tif', args.mpp)
             for n in names]
    cfg = load_config(config)
    low = float(args.low_thr if args.low_thr is not None else cfg.model.test_cfg.rcnn.score_thr)
    seconds = {}

    def save(variant: str, name: str, inst: dict) -> None:
        out = work / variant / f'{name}.json'
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(dict(fold=args.fold, config=config, checkpoint=checkpoint,
                                               **instances_json(inst))))

    if {'tile', 'tile-merged'} & set(args.variants):
        start = time.time()
        model = init_cell_model(config, checkpoint)
        images = [str(Path(args.data_root) / 'train' / n / 'image.tif') for n in names]
        outs = predict_images(model, images, progress=False)
        seconds['tile'] = time.time() - start
        for name, path, out in zip(names, paths, outs):
            pred = out.pred_instances
            save('tile', name, dict(bboxes=pred.bboxes, scores=pred.scores, masks=pred.masks))
            reader = SlideReader(path)
            h, w = out.ori_shape
            tiling = plan_tiles(reader, model_mpp_of(cfg), int(np.ceil(max(h, w) * reader.mpp / model_mpp_of(cfg))),
                                0, None)
            record, _ = tile_record(out, tiling, 0, low, None)
            ids, _, scores = resolved_label_image(tiling, lambda t, record=record: record)
            save('tile-merged', name, label_image_instances(ids, scores))
    if 'tile-limits' in args.variants:
        images = [str(Path(args.data_root) / 'train' / n / 'image.tif') for n in names]
        for name, path, image in zip(names, paths, images):
            reader = SlideReader(path)
            side = int(np.ceil(max(reader.dimensions) * reader.mpp / model_mpp_of(cfg)))
            model = init_cell_model(config, checkpoint, cfg_options=detection_limits(cfg, side))
            pred = predict_images(model, [image], progress=False)[0].pred_instances
            save('tile-limits', name, dict(bboxes=pred.bboxes, scores=pred.scores, masks=pred.masks))
    if 'whole' in args.variants:
        start = time.time()
        for name, path in zip(names, paths):
            ids, _, scores = whole_image_cells(path, config, checkpoint, score_thr=low)
            save('whole', name, label_image_instances(ids, scores))
        seconds['whole'] = time.time() - start
    for variant, thr in (('slide-lowthr', low), ('slide', LABEL_SCORE_THR)):
        detections = variant == 'slide' and 'slide-detections' in args.variants
        if variant not in args.variants and not detections:
            continue
        start = time.time()
        out_dir = work / f'{variant}_out'
        kwargs = dict(detections=True) if detections else {}
        results = segment_slide(paths, config, checkpoint, out_dir, tile=args.tile, overlap=args.overlap,
                                score_thr=thr, overwrite=True, progress=False, **kwargs)
        seconds[variant] = time.time() - start
        for name, res in zip(names, results):
            if variant in args.variants:
                save(variant, name, slide_outputs(Path(res.out_dir)))
            if detections:
                save('slide-detections', name, slide_detections(Path(res.out_dir)))
    print(json.dumps(dict(fold=args.fold, names=names, seconds=seconds)))


def _cut(d: dict, gt: dict, paint: bool) -> dict:
    """The tile path's detections scoring >= 0.5 (the outputs people read), overlapping or (``paint``) painted into
    a label image as ``mmcell segment`` writes it (:func:`mmcell.structures.label_image.label_image`)."""
    scores = np.asarray(d['scores'], np.float64)
    keep = np.flatnonzero(scores >= LABEL_SCORE_THR)
    masks = [d['masks'][i] for i in keep]
    if not paint:
        return instances_of_json(dict(bboxes=np.asarray(d['bboxes']).reshape(-1, 4)[keep].tolist(),
                                      scores=scores[keep].tolist(), masks=masks))
    h, w = gt['ori_shape']
    ids, _, order = label_image(masks, scores[keep], np.zeros(len(keep), np.int64), h, w)
    return label_image_instances(ids, {k + 1: float(scores[keep][i]) for k, i in enumerate(order)})


#: figures derived from the ``tile`` predictions at scoring time (no model run)
DERIVED = {'tile >= 0.5': ('tile', lambda d, gt: _cut(d, gt, False)),
           'tile label image >= 0.5': ('tile', lambda d, gt: _cut(d, gt, True))}


def score(args) -> None:
    work = Path(args.work_dir)
    rows: Dict[str, dict] = {}
    sources = {v: (v, lambda d, gt: instances_of_json(d)) for v in VARIANTS}
    sources.update(DERIVED)
    for variant, (folder, make) in sources.items():
        files = sorted((work / folder).glob('*.json'))
        if not files:
            continue
        samples: List[dict] = []
        folds = set()
        for k, f in enumerate(files):
            d = json.loads(f.read_text())
            if args.folds and d['fold'] not in args.folds:
                continue
            folds.add(d['fold'])
            gt = tile_ground_truth(args.data_root, f.stem, k)
            samples.append(dict(gt, pred_instances=make(d, gt)))
        figures = score_tile_samples(samples, pathology_score_thr=LABEL_SCORE_THR)
        rows[variant] = dict(tiles=len(samples), folds=sorted(folds), cells=sum(len(s['pred_instances']['scores'])
                                                                              for s in samples), **figures)
    ref = rows.get('tile')
    print(f'| variant | tiles | cells | {" | ".join(TILE_FIGURES)} | AP50 vs tile | AP vs tile |')
    print('|---|---|---|' + '---|' * (len(TILE_FIGURES) + 2))
    for variant, r in rows.items():
        delta = (f'{r["AP50"] - ref["AP50"]:+.3f} | {r["AP"] - ref["AP"]:+.3f}' if ref else '- | -')
        print(f'| {variant} | {r["tiles"]} | {r["cells"]} | ' + ' | '.join(f'{r[f]:.3f}' for f in TILE_FIGURES)
              + f' | {delta} |')
    if args.results:
        out = Path(args.results) / f'{args.tag}.json'
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(dict(tag=args.tag, variants=rows, cpu=cpu_name(),
                                               date=datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')),
                                          indent=1) + '\n')
        print(f'wrote {out}')


def main(argv=None) -> None:
    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--data-root', required=True, help='HW3-layout root of the tiles (to_hw3.py --format monuseg)')
    parser.add_argument('--work-dir', required=True, help='slides, outputs and predictions (kept between runs)')
    parser.add_argument('--cv-results', help='the cross-validation results folder (fold<k>.json: val_names)')
    parser.add_argument('--cv-work', help='the cross-validation work folder (fold<k>/: config, checkpoint)')
    parser.add_argument('--fold', type=int, help='run this fold (its model on its held-out tiles)')
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument('--mpp', type=float, default=0.25, help='microns per pixel written into the slides')
    parser.add_argument('--tile', type=int, default=1024, help='segment-slide --tile')
    parser.add_argument('--overlap', type=int, default=128, help='segment-slide --overlap')
    parser.add_argument('--low-thr', type=float, help="score floor of the ablation (default: the config's rcnn one)")
    parser.add_argument('--score', action='store_true', help='pool the finished folds and print the table')
    parser.add_argument('--folds', type=int, nargs='+', help='with --score: only the tiles of these folds')
    parser.add_argument('--results', help='with --score: write <results>/<tag>.json')
    parser.add_argument('--tag', default='run', help='name of the --results file')
    args = parser.parse_args(argv)
    if args.score:
        score(args)
    else:
        if args.fold is None or not args.cv_results or not args.cv_work:
            parser.error('--fold, --cv-results and --cv-work are needed to run a fold')
        run_fold(args)


if __name__ == '__main__':
    main()
