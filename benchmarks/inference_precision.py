"""Inference precision and engine: torch fp32 / bf16 (/ bf16 without channels_last) / OpenVINO fp32 / bf16
(``--engine openvino``): a slide tile's forward, val AP, slide throughput. Prints markdown for benchmarks/RESULTS.md.

Measures what ``--precision`` and ``--engine`` buy at inference, side by side in one run, on real H&E
(variants ``fp32``, ``bf16``, ``bf16-nchw``: torch; ``ov-fp32``, ``ov-bf16``, ``ov-int8``, ``ov-int8-bf16``:
OpenVINO runs the trunk; the int8 ones its int8 trunk and, where ``tools/misc/quantize.py`` made it, its int8 mask
head, the box head in fp32 / bf16; ``ov-int8-bf16-torchmask``: the same with the torch bf16 mask head, the route
before the int8 mask head, for the tile section only):

1. **Tile forward**: the first ``--tiles`` images (1000x1000 MoNuSeg tiles) through the one builder
   (:func:`mmcell.apis.init_cell_model`) in each variant, interleaved ``--repeat`` times (median s/tile), then a
   torch.profiler table per module (backbone, FPN, RPN, RoI extractors, box and mask heads, the OpenVINO trunk),
   per tile, with the stages summed: trunk, RoI heads (extractors + heads) and the rest (pre-processing, RPN and box
   decoding, NMS, mask pasting, RLE), and each variant's masks' IoU to the first variant's (same boxes matched).
2. **Accuracy** (``--val-root``, a converted data set whose ``train/<name>/`` folders are scored; ``--val-names``
   picks some): segm/bbox AP50 and AP at maxDets 1000 per precision, same checkpoint.
3. **Slide** (``--slide-tiles N``): N images laid side by side as one plain TIFF at ``--mpp``, segmented by
   ``mmcell segment-slide --precision P`` (a subprocess each, interleaved ``--slide-repeat`` times): mm^2 of tissue
   per minute, the whole run (model start, tissue mask, tiles, merge, outputs).

Prints markdown for ``benchmarks/RESULTS.md`` ("Inference precision: fp32 vs bf16", "Inference engine: torch vs
OpenVINO").

Example (the MoNuSeg CPU recipe's checkpoint)::

    flock /work/heavy.lock python benchmarks/inference_precision.py CFG CKPT \\
        --images ../shared/data/monuseg-train/images --val-root /tmp/monuseg \\
        --val-names TCGA-50-5931-01Z-00-DX1 TCGA-AR-A1AS-01Z-00-DX1 TCGA-B0-5710-01Z-00-DX1 --slide-tiles 12
"""
from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from mmcell.apis import init_cell_model
from mmcell.apis.builder import build_test_pipeline
from mmcell.apis.evaluate import evaluate_data_root
from mmcell.datasets.image_io import read_image
from mmcell.models.openvino_trunk import openvino_version
from mmcell.utils.checkpoint import detector_of
from mmcell.utils.errors import ToolArgumentParser
from mmcell.utils.precision import describe_units
from mmcell.utils.profiling import label_modules

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ('fp32', 'bf16', 'bf16-nchw', 'ov-fp32', 'ov-bf16', 'ov-int8', 'ov-int8-bf16', 'ov-int8-bf16-torchmask')
#: variant suffixes that change how a route is run, not its engine/precision (tile section only)
SUFFIXES = ('-nchw', '-torchmask')
PROFILED = ('backbone', 'neck', 'rpn_head', 'roi_head.bbox_roi_extractor', 'roi_head.bbox_head',
            'roi_head.mask_roi_extractor', 'roi_head.mask_head')
#: profile ranges summed into stages (``rest``: the whole forward less these)
STAGES = {'trunk': ('backbone', 'neck', 'rpn_head', 'openvino trunk'),
          'RoI heads': ('roi_head.bbox_roi_extractor', 'roi_head.bbox_head', 'roi_head.mask_roi_extractor',
                        'roi_head.mask_head')}


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--images', required=True, help='folder of images (the first is the profiled tile)')
    parser.add_argument('--variants', nargs='+', default=['fp32', 'bf16', 'ov-fp32', 'ov-bf16'], choices=VARIANTS,
                        help='fp32, bf16 (channels_last backbone, the default layout), bf16-nchw (bf16, NCHW); '
                             'ov-P: --engine openvino --precision P (ov-int8-bf16: int8 trunk and mask head, bf16 box '
                             'head; ov-int8-bf16-torchmask: its mask head in torch bf16)')
    parser.add_argument('--repeat', type=int, default=3, help='timed tile forwards per variant (interleaved)')
    parser.add_argument('--tiles', type=int, default=1, help='images timed and profiled (the first N; per tile)')
    parser.add_argument('--val-root', help='converted data set to score (train/<name>/ folders)')
    parser.add_argument('--val-names', nargs='*', help='only these folders of --val-root')
    parser.add_argument('--slide-tiles', type=int, default=0, help='images in the slide mosaic (0: no slide run)')
    parser.add_argument('--slide-repeat', type=int, default=1, help='segment-slide runs per precision')
    parser.add_argument('--mpp', type=float, default=0.25, help='microns per pixel of --images')
    parser.add_argument('--work-dir', default=None, help='slide and outputs (default: a temporary folder)')
    parser.add_argument('--results', help='folder for this run\'s JSON record (<tag>.json: times, profile, accuracy)')
    parser.add_argument('--tag', default='run', help='name of the JSON record')
    return parser.parse_args(argv)


def base_name(name: str) -> str:
    """A variant without its run suffixes (:data:`SUFFIXES`): ``'bf16-nchw'`` -> ``'bf16'``."""
    for suffix in SUFFIXES:
        name = name.replace(suffix, '')
    return name


def engine_precision(name: str) -> tuple:
    """(engine, precision) of a variant name: ``'ov-bf16'`` -> ``('openvino', 'bf16')``, ``'bf16-nchw'`` ->
    ``('torch', 'bf16')``."""
    name = base_name(name)
    if name.startswith('ov-'):
        return 'openvino', name[3:]
    return 'torch', name


def build_variant(args, name: str) -> torch.nn.Module:
    engine, precision = engine_precision(name)
    model = init_cell_model(args.config, args.checkpoint, precision=precision, engine=engine)
    if name.endswith('-nchw'):
        det = detector_of(model)
        det.channels_last = False
        det.roi_head.mask_head.channels_last = False
    if name.endswith('-torchmask'):
        from mmcell.models.openvino_trunk import install_mask_head_engine

        install_mask_head_engine(detector_of(model), None)
    return model


def tile_batch(model, path: str) -> dict:
    pipeline = build_test_pipeline(model.cfg)
    data = pipeline(dict(img_path=path, img_id=0))
    return dict(inputs=[data['inputs']], data_samples=[data['data_samples']])


def forward(model, batch):
    with torch.no_grad():
        return model.test_step(copy.deepcopy(batch))[0].pred_instances


def matched_iou(ref, got) -> float:
    """Mean IoU of each reference mask with the mask of ``got``'s best-overlapping box (1.0: the same masks)."""
    from mmdet.structures.bbox import bbox_overlaps

    from mmcell.structures.rle import masks_to_bool

    if not len(ref) or not len(got):
        return float(len(ref) == len(got))
    best = bbox_overlaps(ref.bboxes, got.bboxes).argmax(dim=1).numpy()
    h, w = ref.masks.height, ref.masks.width
    a, b = masks_to_bool(list(ref.masks), h, w), masks_to_bool(list(got.masks), h, w)[best]
    inter = (a & b).reshape(len(a), -1).sum(1)
    union = (a | b).reshape(len(a), -1).sum(1)
    return float(np.where(union == 0, 1.0, inter / np.maximum(union, 1)).mean())


def tile_section(args, models: Dict[str, torch.nn.Module], paths: List[str]) -> dict:
    """Times (s per tile, the mean over ``paths`` per repeat), detections and mask IoU to the first variant (means
    over the tiles), and a per-tile profile (CPU ms) with the :data:`STAGES` summed."""
    batches = {n: [tile_batch(m, p) for p in paths] for n, m in models.items()}
    preds = {}
    for n, m in models.items():  # warm-up: oneDNN primitives, the fused backbone copy, OpenVINO's compile
        preds[n] = [forward(m, b) for b in batches[n]]
    times: Dict[str, List[float]] = {n: [] for n in models}
    first = next(iter(models))
    dets = {n: statistics.mean(len(p) for p in ps) for n, ps in preds.items()}
    ious = {n: statistics.mean(matched_iou(r, p) for r, p in zip(preds[first], ps)) for n, ps in preds.items()}
    for _ in range(args.repeat):
        for n, m in models.items():
            tic = time.perf_counter()
            for b in batches[n]:
                forward(m, b)
            times[n].append((time.perf_counter() - tic) / len(paths))
    prof = {}
    for n, m in models.items():
        det = detector_of(m)
        handles = label_modules(det, PROFILED)
        if hasattr(det, '_get_inference_backbone'):  # the fast path runs a folded copy of the backbone
            handles += label_modules(torch.nn.ModuleDict(dict(backbone=det._get_inference_backbone())), ['backbone'])
        with profile(activities=[ProfilerActivity.CPU]) as p:
            for b in batches[n]:
                with record_function('## whole forward'):
                    forward(m, b)
        for h in handles:
            h.remove()
        ranges = {e.key: e.cpu_time_total / 1e3 / len(paths) for e in p.key_averages() if e.key.startswith('#')}
        for stage, names in STAGES.items():
            ranges[f'= {stage}'] = sum(ranges.get(f'# {k}', 0.0) for k in names)
        ranges['= rest'] = ranges.get('## whole forward', 0.0) - sum(ranges[f'= {k}'] for k in STAGES)
        prof[n] = ranges
    return dict(times=times, dets=dets, ious=ious, prof=prof, shape=tuple(batches[first][0]['inputs'][0].shape))


def accuracy_section(args) -> dict:
    root = args.val_root
    with tempfile.TemporaryDirectory(prefix='mmcell_valroot_') as tmp:
        if args.val_names:
            os.makedirs(os.path.join(tmp, 'train'))
            for name in args.val_names:
                os.symlink(os.path.abspath(os.path.join(args.val_root, 'train', name)),
                           os.path.join(tmp, 'train', name))
            root = tmp
        out = {}
        for name in dict.fromkeys(base_name(v) for v in args.variants):
            engine, precision = engine_precision(name)
            out[name] = evaluate_data_root(args.config, args.checkpoint, root, class_agnostic=True,
                                           precision=precision, engine=engine)
    return out


def write_mosaic(images: List[str], path: Path) -> tuple:
    import tifffile

    tiles = [read_image(p) for p in images]
    h, w = min(t.shape[0] for t in tiles), min(t.shape[1] for t in tiles)
    cols = int(np.ceil(np.sqrt(len(tiles) * 4 / 3)))  # a landscape slide
    rows = int(np.ceil(len(tiles) / cols))
    mosaic = np.full((rows * h, cols * w, 3), 240, np.uint8)  # empty glass where no tile falls
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        mosaic[r * h:(r + 1) * h, c * w:(c + 1) * w] = t[:h, :w]
    tifffile.imwrite(path, mosaic, photometric='rgb', tile=(256, 256), compression='zlib')
    return mosaic.shape


def slide_section(args, images: List[str], work: Path) -> dict:
    slide = work / 'mosaic.tif'
    shape = write_mosaic(images[:args.slide_tiles], slide)
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    runs: Dict[str, List[dict]] = {}
    for _ in range(args.slide_repeat):
        for name in dict.fromkeys(base_name(v) for v in args.variants):
            engine, precision = engine_precision(name)
            out = work / f'slide_{name}'
            cmd = [sys.executable, '-m', 'mmcell.cli', 'segment-slide', str(slide), '--config', args.config,
                   '--checkpoint', args.checkpoint, '--out', str(out), '--mpp', str(args.mpp), '--overwrite',
                   '--precision', precision, '--engine', engine]
            tic = time.perf_counter()
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - tic
            if proc.returncode:
                raise SystemExit(f'segment-slide failed:\n{(proc.stdout + proc.stderr)[-3000:]}')
            summary = json.loads((out / 'mosaic' / 'summary.json').read_text())
            runs.setdefault(name, []).append(dict(seconds=seconds, tissue=summary['tissue_mm2'],
                                                  cells=summary['cells'], tiles=summary['tiles']))
    return dict(shape=shape, runs=runs)


def main(argv: List[str] | None = None) -> None:
    args = parse_args(argv)
    images = sorted(glob.glob(os.path.join(args.images, '*.tif')) + glob.glob(os.path.join(args.images, '*.png')))
    if not images:
        raise SystemExit(f'{args.images}: no .tif/.png images')
    models = {n: build_variant(args, n) for n in args.variants}
    tile = tile_section(args, models, images[:max(1, args.tiles)])
    del models
    acc = accuracy_section(args) if args.val_root else None
    slide = None
    if args.slide_tiles:
        if args.work_dir:
            work = Path(args.work_dir)
            work.mkdir(parents=True, exist_ok=True)
            slide = slide_section(args, images, work)
        else:
            with tempfile.TemporaryDirectory(prefix='mmcell_slide_') as tmp:
                slide = slide_section(args, images, Path(tmp))
    report(args, images[:max(1, args.tiles)], tile, acc, slide)
    if args.results:
        from mmcell.utils.fileio import write_json

        record = dict(command='python ' + ' '.join(sys.argv), machine=describe_units(), torch=torch.__version__,
                      openvino=openvino_version(), threads=torch.get_num_threads(),
                      date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                      tiles=[os.path.basename(p) for p in images[:max(1, args.tiles)]], repeat=args.repeat,
                      tile=dict(tile, shape=list(tile['shape'])), accuracy=acc, slide=slide)
        path = Path(args.results) / f'{args.tag}.json'
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, record, indent=1)
        print(f'{path}: written', flush=True)


def report(args, paths: List[str], tile: dict, acc, slide) -> None:
    names = list(tile['times'])
    base = statistics.median(tile['times'][names[0]])
    ov = openvino_version()
    print(f'\n## Inference precision and engine: {", ".join(names)}\n- machine: {describe_units()}; torch '
          f'{torch.__version__}, {torch.get_num_threads()} threads' + (f', OpenVINO {ov}' if ov else '') +
          f'\n- command: `python {" ".join(sys.argv)}`\n')
    print(f'**Tile forward** ({", ".join(os.path.basename(p) for p in paths)}, network input of the first '
          f'{tile["shape"][1]}x{tile["shape"][2]}; median of {args.repeat}, interleaved):\n')
    print(f'| variant | s/tile | ratio vs {names[0]} | detections | mask IoU to {names[0]} (matched boxes) |')
    print('|---|---|---|---|---|')
    for n in names:
        med = statistics.median(tile['times'][n])
        print(f'| {n} | {med:.3f} | {base / med:.2f}x | {tile["dets"][n]:.0f} | {tile["ious"][n]:.4f} |')
    print('\nProfile per tile (CPU ms, children included; "= stage": trunk, RoI heads, the rest of the forward):\n')
    print('| range | ' + ' | '.join(names) + ' | ' + ' | '.join(f'{n}/{names[0]}' for n in names[1:]) + ' |')
    print('|---' * (1 + 2 * len(names) - 1) + '|')
    keys = sorted({k for n in names for k in tile['prof'][n]},
                  key=lambda k: (not k.startswith('##'), not k.startswith('='), k))
    for key in keys:
        row = [tile['prof'][n].get(key, 0.0) for n in names]
        print(f'| {key.strip("# ")} | ' + ' | '.join(f'{v:.0f}' for v in row) + ' | ' +
              ' | '.join(f'{v / row[0]:.2f}' if row[0] else '-' for v in row[1:]) + ' |')
    if acc:
        print('\n**Accuracy**, same checkpoint (maxDets 1000, class-agnostic):\n')
        print('| variant | segm AP50 | segm AP | bbox AP50 | change of segm AP50 | change of segm AP |')
        print('|---|---|---|---|---|---|')
        ref = acc[next(iter(acc))]
        for n, m in acc.items():
            print(f'| {n} | {m["segm_mAP_50_md1000"]:.4f} | {m["segm_mAP_md1000"]:.4f} | '
                  f'{m["bbox_mAP_50_md1000"]:.4f} | {m["segm_mAP_50_md1000"] - ref["segm_mAP_50_md1000"]:+.4f} | '
                  f'{m["segm_mAP_md1000"] - ref["segm_mAP_md1000"]:+.4f} |')
    if slide:
        print(f'\n**Slide** ({args.slide_tiles} images as one {slide["shape"][1]}x{slide["shape"][0]} plain TIFF at '
              f'{args.mpp} um/px; `mmcell segment-slide --precision P --engine E`, whole runs):\n')
        print('| variant | runs (s) | tissue mm^2 | tiles | cells | mm^2 tissue / min | ratio |')
        print('|---|---|---|---|---|---|---|')
        rates = {n: statistics.median(r['tissue'] / (r['seconds'] / 60) for r in runs)
                 for n, runs in slide['runs'].items()}
        first = next(iter(rates))
        for n, runs in slide['runs'].items():
            secs = ', '.join(f'{r["seconds"]:.0f}' for r in runs)
            print(f'| {n} | {secs} | {runs[0]["tissue"]:.3f} | '
                  f'{runs[0]["tiles"]} | {runs[0]["cells"]} | {rates[n]:.2f} | {rates[n] / rates[first]:.2f}x |')


if __name__ == '__main__':
    main()
