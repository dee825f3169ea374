"""CPU Mask R-CNN inference time: upstream mmdet vs mmcell's fast path (fp32 / bf16 / int8 mask heads, score-gated
mask head), same random weights, in one run; or with ``--ap``, the contest AP50 of a trained model per mask head.
Prints a table and appends it to benchmarks/RESULTS.md (``--no-append``: print only).

    python benchmarks/inference.py [--config mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py]
        [--size 748 928] [--dets 1000] [--repeat 3] [--variants fp32 bf16 int8 thr] [--no-append]

The model is the config's Mask R-CNN with 4 classes and random weights (no download); ``score_thr=0`` and
``max_per_img=DETS`` force exactly DETS detections. The input is a ``SIZE`` network input made from an image of
half that size (the contest median upscaled 2x), so masks are pasted at the original size as in a submission.
Upstream's dense masks are RLE-encoded (what a submission/metric needs) and timed both with and without that
step. Each variant runs interleaved with upstream ``--repeat`` times; medians are reported with the per-instance
mask IoU against upstream (instances matched by label and box IoU). Timings on a shared machine are noisy:
compare ratios measured in the same run.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import os
import os.path as osp
import platform
import statistics
import sys
import time

import numpy as np
import pycocotools.mask as mask_util
import torch

from mmcell.models.fast_mask_rcnn import fast_inference_model_cfg
from mmcell.utils import register_all_modules
from mmcell.utils.errors import ToolArgumentParser
from mmcell.utils.fileio import write_results_section

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESULTS = osp.join(REPO, 'benchmarks', 'RESULTS.md')


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default='mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    parser.add_argument('--size', type=int, nargs=2, default=[748, 928], help='network input H W')
    parser.add_argument('--scale', type=float, default=2.0, help='input / original image scale')
    parser.add_argument('--dets', type=int, default=1000, help='detections per image (forced)')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--variants', nargs='+', default=['fp32', 'bf16', 'int8', 'thr'],
                        help='fp32, bf16, int8 (mask head precision) and thr (mask head only for the top half)')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0 = torch default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-append', action='store_true', help='do not append to benchmarks/RESULTS.md')
    parser.add_argument('--ap', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
                        help='instead of timing: contest AP50 of a trained model on --data-root\'s test split, '
                             'upstream vs mmcell fp32 / bf16 / int8 mask heads (through tools/test.py)')
    parser.add_argument('--data-root', help='synthetic (or HW3) data root for --ap')
    return parser.parse_args(argv)


FAST_OPTIONS = ['model.type=FastMaskRCNN', 'model.roi_head.type=FastStandardRoIHead',
                'model.roi_head.bbox_roi_extractor.type=FastRoIExtractor',
                'model.roi_head.mask_roi_extractor.type=FastRoIExtractor',
                'model.roi_head.mask_head.type=FastFCNMaskHead']


def measure_ap(config: str, checkpoint: str, data_root: str, variants: list) -> dict:
    """``coco/segm_mAP_50`` of upstream and each precision variant, via tools/test.py on the test split."""
    import re
    import subprocess
    import tempfile

    results = {}
    for name in ['upstream'] + [v for v in variants if v in ('fp32', 'bf16', 'int8')]:
        options = ['--no-fast'] if name == 'upstream' else \
            ['--cfg-options'] + FAST_OPTIONS + [f'model.roi_head.mask_head.precision={name}']
        with tempfile.TemporaryDirectory() as work:
            cmd = [sys.executable, osp.join(REPO, 'tools', 'test.py'), config, checkpoint, '--work-dir', work,
                   '--data-root', data_root] + options
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        found = re.findall(r'coco/segm_mAP_50: ([0-9.]+)|coco/segm_mAP_50=([0-9.]+)', proc.stdout + proc.stderr)
        if proc.returncode != 0 or not found:
            raise SystemExit(f'{name}: tools/test.py failed:\n{(proc.stdout + proc.stderr)[-2000:]}')
        results[name] = float([g for g in found[-1] if g][0])
        print(f'{name}: segm AP50 {results[name]:.4f}', flush=True)
    return results


def build_models(config: str, dets: int, variants: list, seed: int) -> tuple:
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.hub import get_config

    cfg = get_config(config) if config.startswith('mmdet::') else Config.fromfile(config)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    model_cfg.roi_head.bbox_head.num_classes = 4
    model_cfg.roi_head.mask_head.num_classes = 4
    model_cfg.test_cfg.rpn.max_per_img = max(2 * dets, 1000)
    model_cfg.test_cfg.rpn.nms_pre = max(3 * dets, 1000)
    model_cfg.test_cfg.rcnn.score_thr = 0.0
    model_cfg.test_cfg.rcnn.max_per_img = dets
    torch.manual_seed(seed)
    upstream = MODELS.build(model_cfg)
    upstream.init_weights()
    upstream.eval()
    fast = {}
    for name in variants:
        precision = name if name in ('fp32', 'bf16', 'int8') else 'fp32'
        fcfg = fast_inference_model_cfg(model_cfg, precision=precision, mask_format='rle')
        model = MODELS.build(fcfg)
        model.load_state_dict(upstream.state_dict())
        model.eval()
        fast[name] = model
    return upstream, fast


def make_batch(size: tuple, scale: float, seed: int) -> dict:
    from mmdet.structures import DetDataSample

    h, w = size
    ori = (int(round(h / scale)), int(round(w / scale)))
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(3, ori[0], ori[1]), dtype=np.uint8)
    img = torch.from_numpy(small).float()[None]
    img = torch.nn.functional.interpolate(img, size=(h, w), mode='bilinear', align_corners=False)[0]
    sample = DetDataSample(metainfo=dict(img_id=0, img_shape=(h, w), ori_shape=ori,
                                         scale_factor=(w / ori[1], h / ori[0]), pad_shape=(h, w)))
    return dict(inputs=[img.round().clamp(0, 255).to(torch.uint8)], data_samples=[sample])


def run_upstream(model, batch) -> tuple:
    """(wall s, cpu s) of predict, of predict + RLE encoding, the prediction and its RLEs."""
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        pred = model.test_step(copy.deepcopy(batch))[0].pred_instances
    t1, c1 = time.perf_counter(), time.process_time()
    masks = pred.masks.numpy()
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    t2, c2 = time.perf_counter(), time.process_time()
    return (t1 - t0, c1 - c0), (t2 - t0, c2 - c0), pred, rles


def run_fast(model, batch) -> tuple:
    """(wall s, cpu s) and the prediction."""
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        pred = model.test_step(copy.deepcopy(batch))[0].pred_instances
    return (time.perf_counter() - t0, time.process_time() - c0), pred


def mask_ious(up_pred, up_rles, fast_pred) -> np.ndarray:
    """Per upstream instance: mask IoU with the fast instance of the same label and best box IoU."""
    from mmdet.structures.bbox import bbox_overlaps

    ious = np.zeros(len(up_rles))
    if len(fast_pred) == 0:
        return ious
    box_iou = bbox_overlaps(up_pred.bboxes, fast_pred.bboxes)
    box_iou[up_pred.labels[:, None] != fast_pred.labels[None, :]] = -1
    match = box_iou.argmax(1).numpy()
    for i, j in enumerate(match):
        ious[i] = mask_util.iou([up_rles[i]], [fast_pred.masks[j]], [0])[0, 0] if box_iou[i, j] > 0 else 0.0
    # two empty masks are equal
    empty = np.array([mask_util.area(up_rles[i]) == 0 and mask_util.area(fast_pred.masks[j]) == 0
                      for i, j in enumerate(match)], dtype=bool)
    ious[empty] = 1.0
    return ious


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ap:
        if not args.data_root:
            raise SystemExit('--ap needs --data-root')
        ap = measure_ap(args.ap[0], args.ap[1], args.data_root, args.variants)
        table = '\n'.join(['| mask head | segm AP50 (test split) | change vs upstream |', '|---|---|---|'] +
                          [f'| {k} | {v:.4f} | {v - ap["upstream"]:+.4f} |' for k, v in ap.items()])
        print(table)
        if not args.no_append:
            cmd = 'python benchmarks/inference.py ' + ' '.join(
                sys.argv[1:] if argv is None else argv)
            write_results_section(RESULTS, f'## Cheaper mask heads: AP50 change on the synthetic test split '
                                 f'({datetime.date.today()})\n'
                                 f'- Machine: 2-core CPU dev box, no GPU. Command: `{cmd.strip()}`\n\n{table}\n')
        return
    register_all_modules()
    upstream, fast = build_models(args.config, args.dets, args.variants, args.seed)
    half = None
    if 'thr' in fast:
        # gate the mask head at the median detection score: half of the detections get box masks
        with torch.no_grad():
            scores = fast['thr'].test_step(make_batch(args.size, args.scale, args.seed))[0].pred_instances.scores
        half = float(scores.median())
        fast['thr'].roi_head.test_cfg.mask_score_thr = half
    batch = make_batch(args.size, args.scale, args.seed)
    run_upstream(upstream, batch)  # warm-up (oneDNN primitive caches, allocator)
    for model in fast.values():
        run_fast(model, batch)
    times = {'upstream': [], 'upstream+rle': [], **{k: [] for k in fast}}
    ious, counts = {}, {}
    for rep in range(args.repeat):
        t_up, t_up_rle, up_pred, up_rles = run_upstream(upstream, batch)
        times['upstream'].append(t_up)
        times['upstream+rle'].append(t_up_rle)
        counts['upstream'] = len(up_pred)
        for name, model in fast.items():
            t, pred = run_fast(model, batch)
            times[name].append(t)
            counts[name] = len(pred)
            if rep == 0:
                ious[name] = mask_ious(up_pred, up_rles, pred)
        print(f'repeat {rep + 1}/{args.repeat} (wall/cpu s): '
              + ', '.join(f'{k} {v[-1][0]:.2f}/{v[-1][1]:.2f}' for k, v in times.items()), flush=True)
    med = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    h, w = args.size
    lines = [f'| variant | wall s/image (median of {args.repeat}) | ratio vs upstream+RLE | ratio vs upstream | '
             'CPU s/image (median) | CPU-time ratio vs upstream+RLE | dets | '
             'mask IoU vs upstream: mean / min / share >= 0.99 |', '|---|---|---|---|---|---|---|---|']
    for name in times:
        iou = ious.get(name)
        iou_txt = f'{iou.mean():.4f} / {iou.min():.4f} / {(iou >= 0.99).mean():.3f}' if iou is not None else '-'
        label = {'fp32': 'mmcell fp32', 'bf16': 'mmcell bf16 mask head', 'int8': 'mmcell int8 mask head',
                 'thr': f'mmcell fp32, mask head only for score >= {half:.3f} (the top half; the rest get box masks, '
                        'hence the IoU)' if half else 'thr'}.get(name, name)
        lines.append(f'| {label} | {med[name]:.2f} | {med["upstream+rle"] / med[name]:.2f}x | '
                     f'{med["upstream"] / med[name]:.2f}x | {cpu[name]:.2f} | {cpu["upstream+rle"] / cpu[name]:.2f}x | '
                     f'{counts.get(name, counts["upstream"])} | {iou_txt} |')
    table = '\n'.join(lines)
    load = ' / '.join(f'{v:.1f}' for v in os.getloadavg())
    print(table)
    if args.no_append:
        return
    cmd = 'python benchmarks/inference.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    entry = (f'\n## CPU Mask R-CNN inference: upstream mmdet vs mmcell fast path ({datetime.date.today()})\n'
             f'- Machine: 2-core CPU dev box, no GPU ({platform.processor() or platform.machine()}, '
             f'torch {torch.__version__}, {torch.get_num_threads()} threads); shared with ~5 engineers (load average '
             f'{load}), so absolute times are noisy: compare the ratios (interleaved runs, medians; CPU time is '
             'less sensitive to the other processes than wall time).\n'
             f'- Command: `{cmd.strip()}`\n'
             f'- Model: `{args.config}` with 4 classes, random weights; network input {h}x{w} from a '
             f'{int(round(h / args.scale))}x{int(round(w / args.scale))} image (x{args.scale:g}), '
             f'{args.dets} detections forced (score_thr 0, max_per_img {args.dets}). Upstream returns dense masks; '
             f'"upstream+RLE" adds the pycocotools encoding a submission needs; mmcell returns RLE directly.\n\n'
             f'{table}\n')
    write_results_section(RESULTS, entry)
    print(f'wrote its section of {RESULTS}')


if __name__ == '__main__':
    main()
