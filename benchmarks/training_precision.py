"""Training step of a config in fp32 vs bf16 (vs bf16 + channels_last), side by side on the same real batches.
Prints markdown for benchmarks/RESULTS.md.

Measures what ``precision='bf16'`` (``tools/train.py --precision bf16``,
:class:`mmcell.engine.BF16AutocastOptimWrapper`) buys on this CPU: seconds per training step (data preprocessor,
forward, losses, backward, optimizer step; data loading excluded: the batches are drawn once from the config's
training pipeline and reused), interleaved round by round so other jobs on the machine slow every variant alike,
and a per-module / per-op torch.profiler
table. Prints markdown for ``benchmarks/RESULTS.md`` ("Training precision: fp32 vs bf16 per step").

Example (the MoNuSeg CPU recipe on real crops)::

    python tools/dataset_converters/to_hw3.py --format monuseg ../shared/data/monuseg-train /tmp/monuseg
    flock /work/heavy.lock python benchmarks/training_precision.py \\
        configs/monuseg/mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py --data-root /tmp/monuseg
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from typing import Dict, List

import torch
from mmdet.registry import MODELS
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from torch.profiler import ProfilerActivity, profile, record_function

from mmcell.utils import load_config, register_all_modules
from mmcell.utils.errors import ToolArgumentParser
from mmcell.utils.precision import cpu_name, describe_units
from mmcell.utils.profiling import label_modules

#: modules whose forward time the profile table shows (those the model has)
PROFILED_MODULES = ('backbone.conv1', 'backbone.layer1', 'backbone.layer2', 'backbone.layer3', 'backbone.layer4',
                    'neck', 'rpn_head', 'roi_head.bbox_roi_extractor', 'roi_head.bbox_head',
                    'roi_head.mask_roi_extractor', 'roi_head.mask_head')
VARIANTS = ('fp32', 'bf16', 'bf16-cl', 'fp32-roi', 'bf16-roi')


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='training config (e.g. the MoNuSeg CPU recipe)')
    parser.add_argument('--data-root', help='converted data set (rewrites the config data_root)')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS,
                        help='fp32; bf16 (BF16AutocastOptimWrapper); bf16-cl (bf16, model and input channels_last); '
                             "-roi: FastRoIExtractor(fast_training=True) instead of mmcv's RoIAlign")
    parser.add_argument('--batches', type=int, default=4, help='distinct training batches drawn (reused)')
    parser.add_argument('--rounds', type=int, default=4, help='timed rounds; each runs every variant on each batch')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps per variant first')
    parser.add_argument('--profile-steps', type=int, default=3, help='steps per variant under torch.profiler (0: none)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (1: the recipe, whose data worker takes the other core)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def draw_batches(cfg, n: int) -> list:
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg['num_workers'] = 0
    loader_cfg.pop('persistent_workers', None)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    it = iter(loader)
    next(it)  # workers, caches
    tic = time.perf_counter()
    batches = [next(it) for _ in range(n)]
    return batches, (time.perf_counter() - tic) / n


def with_fast_roi(model_cfg: dict) -> dict:
    """The model config with both RoI extractors on mmcell's differentiable CPU RoIAlign."""
    model_cfg = copy.deepcopy(model_cfg)
    for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
        model_cfg['roi_head'][key].update(type='FastRoIExtractor', fast_training=True)
    return model_cfg


def build_variant(cfg, model0: torch.nn.Module, name: str):
    if name.endswith('-roi'):
        model = MODELS.build(with_fast_roi(cfg.model))
        model.load_state_dict(model0.state_dict())
    else:
        model = copy.deepcopy(model0)
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    if name.startswith('bf16'):
        wrapper_cfg['type'] = 'BF16AutocastOptimWrapper'
    if name.endswith('-cl'):
        model = model.to(memory_format=torch.channels_last)
    model.train()
    return model, build_optim_wrapper(model, wrapper_cfg)


def train_step(model, wrapper, batch, channels_last: bool = False) -> dict:
    """``BaseModel.train_step`` spelled out, so the profile can name its phases."""
    with wrapper.optim_context(model):
        with record_function('## forward + losses'):
            data = model.data_preprocessor(batch, True)
            if channels_last:
                data['inputs'] = data['inputs'].contiguous(memory_format=torch.channels_last)
            losses = model._run_forward(data, mode='loss')
    parsed, log_vars = model.parse_losses(losses)
    with record_function('## backward'):
        wrapper.backward(parsed)
    with record_function('## optimizer step'):
        wrapper.step()
        wrapper.zero_grad()
    return dict(losses=losses, loss=parsed.item())


def main(argv: List[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    register_all_modules()
    cfg = load_config(args.config, data_root=args.data_root)
    batches, data_s = draw_batches(cfg, args.batches)
    model0 = MODELS.build(cfg.model)
    model0.init_weights()
    variants = {name: build_variant(cfg, model0, name) for name in args.variants}

    loss_dtypes = {}
    for name, (model, wrapper) in variants.items():
        for i in range(args.warmup):
            out = train_step(model, wrapper, copy.deepcopy(batches[i % len(batches)]), name.endswith('-cl'))
        loss_dtypes[name] = sorted({str(v.dtype).replace('torch.', '') for v in out['losses'].values()
                                    if isinstance(v, torch.Tensor)})

    times: Dict[str, List[float]] = {name: [] for name in variants}
    losses: Dict[str, List[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for batch in batches:
            for name, (model, wrapper) in variants.items():
                data = copy.deepcopy(batch)
                tic = time.perf_counter()
                out = train_step(model, wrapper, data, name.endswith('-cl'))
                times[name].append(time.perf_counter() - tic)
                losses[name].append(out['loss'])

    profiles = {}
    if args.profile_steps:
        for name, (model, wrapper) in variants.items():
            handles = label_modules(model, PROFILED_MODULES)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for i in range(args.profile_steps):
                    train_step(model, wrapper, copy.deepcopy(batches[i % len(batches)]), name.endswith('-cl'))
            for h in handles:
                h.remove()
            profiles[name] = {e.key: (e.cpu_time_total / 1e3 / args.profile_steps,
                                      e.self_cpu_time_total / 1e3 / args.profile_steps)
                              for e in prof.key_averages()}
    report(args, times, losses, loss_dtypes, profiles, data_s)


def report(args, times, losses, loss_dtypes, profiles, data_s: float) -> None:
    base = statistics.median(times['fp32']) if 'fp32' in times else None
    print(f'\n## Training precision: fp32 vs bf16 per step\n- machine: {describe_units()}; torch '
          f'{torch.__version__}, {args.threads} thread(s)\n- command: `python {" ".join(sys.argv)}`\n')
    print('| variant | s/step median | min | max | ratio vs fp32 (median) | loss dtypes | mean loss |')
    print('|---|---|---|---|---|---|---|')
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = f'{base / med:.2f}x' if base else '-'
        print(f'| {name} | {med:.3f} | {min(ts):.3f} | {max(ts):.3f} | {ratio} | {", ".join(loss_dtypes[name])} '
              f'| {statistics.mean(losses[name]):.4f} |')
    print(f'\nData pipeline (one process, as the recipe\'s one worker): {data_s:.3f} s/batch. In the training loop a '
          'step takes max(model step, data batch) when the worker has its own core.')
    if not profiles:
        return
    names = list(profiles)
    print('\nPer module and phase (forward modules: CPU ms per step, children included):\n')
    print('| range | ' + ' | '.join(f'{n} ms' for n in names) + ' | ' +
          ' | '.join(f'{n}/fp32' for n in names if n != 'fp32') + ' |')
    print('|---' * (1 + len(names) + len([n for n in names if n != 'fp32'])) + '|')
    keys = [k for k in profiles[names[0]] if k.startswith('#')]
    for key in sorted(keys, key=lambda k: (not k.startswith('##'), k)):
        row = [profiles[n].get(key, (0, 0))[0] for n in names]
        ratios = [f'{r / row[0]:.2f}' if row[0] else '-' for n, r in zip(names, row) if n != 'fp32']
        print(f'| {key.strip("# ")} | ' + ' | '.join(f'{v:.1f}' for v in row) + ' | ' + ' | '.join(ratios) + ' |')
    print('\nTop ops by self CPU time (ms per step):\n')
    top = set()
    for n in names:
        ranked = sorted(((v[1], k) for k, v in profiles[n].items() if not k.startswith('#')), reverse=True)
        top |= {k for _, k in ranked[:12]}
    print('| op | ' + ' | '.join(names) + ' |')
    print('|---' * (1 + len(names)) + '|')
    for key in sorted(top, key=lambda k: -max(profiles[n].get(k, (0, 0))[1] for n in names)):
        print(f'| `{key}` | ' + ' | '.join(f'{profiles[n].get(key, (0, 0))[1]:.1f}' for n in names) + ' |')
    print(f'\nCPU: {cpu_name()}')


if __name__ == '__main__':
    main()
