"""K-fold cross-validation over labelled tiles, folds grouped by organ or source image: the protocol that chooses
recipe settings.

One 3-tile validation split misleads: differences of a few points between test settings are noise there (issue 19).
:func:`cross_validate` trains a config once per fold (the fold's tiles held out, the rest trained on, optionally
with a shorter *screening* schedule), scores each fold's model on its held-out tiles at one or more test settings
(test resize x mask threshold) with the project's scoring (:func:`mmcell.apis.evaluate.evaluate_tiles`: AP50 / AP
at maxDets 1000, AJI, AJI+, PQ at score >= 0.5; for a multi-class model also the class-aware contest AP50 and the
AP50 of each class), and summarises mean +- std over the folds per figure, with the
paired difference of every setting to the first (the same folds and models: the std of that difference, not of the
figures, says whether a difference is real).

Folds are grouped (:func:`cv_group_of`) by organ for MoNuSeg-style names (:func:`organ_of`: the TCGA tissue source
site code), so no organ is both trained on and scored, as on truly unseen tissue, and by source image for patch names
``<split>_<image>_<patch>`` (CoNSeP patches, :func:`source_image_of`), whose neighbouring patches are
near-duplicates. Each fold writes ``WORK/fold<k>/figures.json`` (or ``RESULTS/fold<k>.json`` with ``results_dir``)
and is skipped when that file exists, so a run can be continued fold by fold, by a later session too.
"""
from __future__ import annotations

import copy
import json
import math
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner

from mmcell.apis.evaluate import TILE_FIGURES, evaluate_tiles
from mmcell.datasets.hw3_format import list_train_samples
from mmcell.utils.fileio import atomic_write_text
from mmcell.utils.setup_env import load_config, register_all_modules

#: TCGA tissue source site code (the two characters after ``TCGA-``) -> organ, for the MoNuSeg 2018 training and
#: test tiles (TCGA's code tables; the tiles of one site come from one study, i.e. one organ and one hospital)
TCGA_SITE_ORGAN = {
    '18': 'lung', '21': 'lung', '38': 'lung', '44': 'lung', '49': 'lung', '50': 'lung', '69': 'lung',
    'A7': 'breast', 'AC': 'breast', 'AO': 'breast', 'AR': 'breast', 'E2': 'breast',
    '2Z': 'kidney', 'B0': 'kidney', 'GL': 'kidney', 'HE': 'kidney', 'IZ': 'kidney',
    'CH': 'prostate', 'EJ': 'prostate', 'G9': 'prostate', 'HC': 'prostate',
    'A6': 'colon', 'AY': 'colon', 'NH': 'colon',
    'CU': 'bladder', 'DK': 'bladder', 'G2': 'bladder', 'ZF': 'bladder',
    'KB': 'stomach', 'RD': 'stomach',
    'FG': 'brain', 'HT': 'brain',
}


def organ_of(name: str) -> str:
    """The organ of a tile from its TCGA name (``TCGA-<site>-...``); other names are their own group."""
    parts = name.split('-')
    if len(parts) > 2 and parts[0].upper() == 'TCGA':
        return TCGA_SITE_ORGAN.get(parts[1].upper(), f'TCGA site {parts[1]}')
    return name


#: a patch cut from a bigger image: ``<split>_<image>_<patch>`` (CoNSeP's ``train_12_003``)
PATCH_NAME = re.compile(r'^((?:train|test|val)_\d+)_\d+$', re.IGNORECASE)


def source_image_of(name: str) -> Optional[str]:
    """The source image of a patch named ``<split>_<image>_<patch>`` (``train_12_003`` -> ``train_12``), else None."""
    match = PATCH_NAME.match(name)
    return match.group(1) if match else None


def cv_group_of(name: str) -> str:
    """The group a fold keeps whole: the source image of a patch (:func:`source_image_of`), else the organ of a TCGA
    tile (:func:`organ_of`), else the name itself."""
    return source_image_of(name) or organ_of(name)


def organ_folds(names: Sequence[str], num_folds: int) -> List[List[str]]:
    """``num_folds`` folds of ``names`` that keep each group (:func:`cv_group_of`: an organ, a source image) in one
    fold, as even in size as the groups allow.

    Groups are placed largest first, each in the fold with the fewest tiles so far (ties: the lowest fold), so the
    folds are the same for the same names. The 13 MoNuSeg 2018 training tiles in 4 folds: breast (4), kidney (3),
    lung (3), prostate + colon (2 + 1).

    Raises:
        ValueError: fewer groups than folds, or fewer than 2 folds.
    """
    groups: Dict[str, List[str]] = {}
    for name in sorted(names):
        groups.setdefault(cv_group_of(name), []).append(name)
    if num_folds < 2 or len(groups) < num_folds:
        raise ValueError(f'{num_folds} folds grouped by organ or source image need at least {max(num_folds, 2)} '
                         f'groups (organs, source images); the tiles hold {len(groups)}: {sorted(groups)}')
    folds: List[List[str]] = [[] for _ in range(num_folds)]
    for _, members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        min(folds, key=len).extend(members)
    return [sorted(f) for f in folds]


def screening_config(cfg: Config, iters: int) -> Config:
    """``cfg`` with its iteration schedule compressed to ``iters`` (warm-up and cosine scaled alike).

    Every ``begin`` / ``end`` / ``T_max`` of the parameter schedulers is scaled by ``iters / max_iters``, so a
    screening run sees the same shape of learning rate as the full recipe, only shorter.
    """
    cfg = copy.deepcopy(cfg)
    old = int(cfg.train_cfg.max_iters)
    ratio = iters / old
    schedulers = cfg.get('param_scheduler') or []
    for sched in (schedulers if isinstance(schedulers, list) else [schedulers]):
        for key in ('begin', 'end', 'T_max'):
            if key in sched and isinstance(sched[key], (int, float)):
                sched[key] = max(1, int(round(sched[key] * ratio))) if sched[key] else 0
    cfg.train_cfg.max_iters = iters
    return cfg


def with_test_setting(cfg: Config, scale: Optional[float] = None, mask_thr: Optional[float] = None) -> Config:
    """``cfg`` testing at the resize ``scale`` (image pixels -> network pixels) and/or another mask threshold."""
    cfg = copy.deepcopy(cfg)
    if scale is not None:
        for split in ('test_dataloader', 'val_dataloader'):
            if cfg.get(split):
                for step in cfg[split].dataset.pipeline:
                    if step['type'] in ('Resize', 'mmdet.Resize'):
                        step.pop('scale', None)
                        step.update(scale_factor=float(scale), keep_ratio=True)
    if mask_thr is not None:
        test_cfg = cfg.model.test_cfg
        (test_cfg.rcnn if 'rcnn' in test_cfg else test_cfg).mask_thr_binary = float(mask_thr)  # two- / one-stage
    return cfg


def _config_test_setting(cfg: Config) -> tuple:
    scale = next((s.get('scale_factor') for s in cfg.test_dataloader.dataset.pipeline
                  if s['type'] in ('Resize', 'mmdet.Resize')), None)
    test_cfg = cfg.model.get('test_cfg') or {}
    return scale, (test_cfg.get('rcnn') or test_cfg).get('mask_thr_binary')


def setting_label(scale: Optional[float], mask_thr: Optional[float]) -> str:
    """The name of a test setting in the figures and tables, e.g. ``'test 1.25x, mask thr 0.4'``."""
    parts = [f'test {scale:g}x' if scale is not None else 'test (config)']
    if mask_thr is not None:
        parts.append(f'mask thr {mask_thr:g}')
    return ', '.join(parts)


def fold_train_config(cfg: Config, val_names: Sequence[str], work_dir: Union[str, Path],
                      iters: Optional[int] = None, seed: Optional[int] = 0) -> Config:
    """The config that trains one fold: every tile but ``val_names``, no validation loop, one final checkpoint."""
    cfg = screening_config(cfg, iters) if iters else copy.deepcopy(cfg)
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(split) and 'val_names' in cfg[split].dataset:
            cfg[split].dataset.val_names = list(val_names)
    if 'val_names' not in cfg.train_dataloader.dataset:
        raise ValueError(f'{cfg.filename}: the train dataset has no val_names (a fixed split); the protocol needs one')
    # the fold's model is scored afterwards at every test setting, so training runs without a validation loop
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.train_cfg.val_interval = int(cfg.train_cfg.max_iters) + 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=int(cfg.train_cfg.max_iters),
                                        max_keep_ckpts=1, save_best=None)
    cfg.work_dir = str(work_dir)
    if seed is not None:
        cfg.randomness = dict(seed=seed)
    cfg.experiment_name = f'{Path(work_dir).name}_{time.strftime("%Y%m%d_%H%M%S")}'
    return cfg


def summarize(fold_results: List[dict], figures: Sequence[str] = TILE_FIGURES) -> dict:
    """Mean and std (over folds, ddof 1) per setting and figure, and of each setting's paired difference to the
    first setting (same folds, same models)."""
    settings = list(fold_results[0]['figures']) if fold_results else []
    out: dict = dict(folds=len(fold_results), settings={}, paired_difference={})
    for label in settings:
        out['settings'][label] = {}
        for fig in figures:
            values = np.array([r['figures'][label][fig] for r in fold_results], dtype=float)
            out['settings'][label][fig] = dict(mean=float(values.mean()),
                                               std=float(values.std(ddof=1)) if len(values) > 1 else math.nan)
    for label in settings[1:]:
        out['paired_difference'][label] = {}
        for fig in figures:
            diff = np.array([r['figures'][label][fig] - r['figures'][settings[0]][fig] for r in fold_results])
            out['paired_difference'][label][fig] = dict(
                mean=float(diff.mean()), std=float(diff.std(ddof=1)) if len(diff) > 1 else math.nan)
    out['train_s'] = dict(mean=float(np.mean([r['train_s'] for r in fold_results])) if fold_results else math.nan)
    return out


def _pm(stat: dict) -> str:
    return f'{stat["mean"]:.3f} ± {stat["std"]:.3f}' if not math.isnan(stat['std']) else f'{stat["mean"]:.3f}'


def summary_markdown(summary: dict, fold_results: List[dict], title: str,
                     figures: Sequence[str] = TILE_FIGURES) -> str:
    """The summary as Markdown: mean ± std per setting, the paired differences, then one row per fold."""
    lines = [f'## {title}', '',
             f'{summary["folds"]} of {summary.get("num_folds", summary["folds"])} folds grouped by '
             'organ / source image done; '
             'mean ± std over them (std with ddof 1).', '',
             '| setting | ' + ' | '.join(figures) + ' |', '|---|' + '---|' * len(figures)]
    for label, stats in summary['settings'].items():
        lines.append(f'| {label} | ' + ' | '.join(_pm(stats[f]) for f in figures) + ' |')
    if summary['paired_difference']:
        first = next(iter(summary['settings']))
        lines += ['', f'Paired difference to "{first}" (same folds, same models):', '',
                  '| setting | ' + ' | '.join(f'Δ{f}' for f in figures) + ' |', '|---|' + '---|' * len(figures)]
        for label, stats in summary['paired_difference'].items():
            lines.append(f'| {label} | ' + ' | '.join(
                f'{stats[f]["mean"]:+.3f} ± {stats[f]["std"]:.3f}' for f in figures) + ' |')
    lines += ['', '| fold | held-out tiles (groups) | train s | setting | ' + ' | '.join(figures) + ' |',
              '|---|---|---|---|' + '---|' * len(figures)]
    for r in fold_results:
        organs = ', '.join(sorted({cv_group_of(n) for n in r['val_names']}))
        for label, figs in r['figures'].items():
            lines.append(f'| {r["fold"]} | {len(r["val_names"])} ({organs}) | {r["train_s"]:.0f} | {label} | '
                         + ' | '.join(f'{figs[f]:.3f}' for f in figures) + ' |')
    return '\n'.join(lines) + '\n'


def run_fold(config: Union[str, Config], data_root: Union[str, Path], val_names: Sequence[str],
             work_dir: Union[str, Path], iters: Optional[int] = None,
             test_settings: Sequence[tuple] = ((None, None), ), cfg_options: Optional[dict] = None,
             seed: Optional[int] = 0) -> dict:
    """Train ``config`` on every tile of ``data_root`` but ``val_names`` and score the model on them.

    Args:
        config: the recipe (a config with a fixed ``val_names`` split, e.g. the MoNuSeg ones).
        data_root: the HW3-layout data.
        val_names: the fold's held-out tiles.
        work_dir: the fold's folder (config, log, checkpoint, ``figures.json``).
        iters: screening schedule length (default: the config's).
        test_settings: ``(scale, mask_thr)`` pairs (``None``: the config's own).
        cfg_options: overrides merged into the config first.
        seed: training seed (``None``: mmengine draws one).

    Returns:
        ``dict(fold, val_names, iters, train_s, figures={setting label: {figure: value}}, s_per_tile)``.
    """
    register_all_modules()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    base = load_config(config, cfg_options, str(data_root))
    cfg = fold_train_config(base, val_names, work_dir, iters, seed)
    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    train_s = time.time() - start
    checkpoint = work_dir / f'iter_{int(cfg.train_cfg.max_iters)}.pth'
    del runner
    figures, s_tile = {}, {}
    for scale, mask_thr in test_settings:
        label = setting_label(*_resolved(base, scale, mask_thr))
        t0 = time.time()
        figures[label] = evaluate_tiles(with_test_setting(base, scale, mask_thr), str(checkpoint), data_root,
                                        list(val_names))
        s_tile[label] = (time.time() - t0) / max(len(val_names), 1)
    return dict(val_names=list(val_names), iters=int(cfg.train_cfg.max_iters), train_s=train_s, figures=figures,
                s_per_tile=s_tile, checkpoint=str(checkpoint))


def _resolved(cfg: Config, scale: Optional[float], mask_thr: Optional[float]) -> tuple:
    own_scale, own_thr = _config_test_setting(cfg)
    return (own_scale if scale is None else scale), (own_thr if mask_thr is None else mask_thr)


def cross_validate(config: Union[str, Config], data_root: Union[str, Path], work_dir: Union[str, Path],
                   num_folds: int = 4, iters: Optional[int] = None, test_scales: Sequence[Optional[float]] = (None, ),
                   mask_thrs: Sequence[Optional[float]] = (None, ), only_folds: Optional[Sequence[int]] = None,
                   cfg_options: Optional[dict] = None, seed: Optional[int] = 0,
                   title: Optional[str] = None, results_dir: Optional[Union[str, Path]] = None) -> dict:
    """The protocol: grouped folds (:func:`organ_folds`), one model per fold, every test setting scored, the summary
    written.

    Writes ``WORK/folds.json`` (the folds), ``WORK/fold<k>/figures.json`` (skipped when present: continue a run),
    and the summary of the folds done so far: ``WORK/cv_summary.json`` and ``WORK/cv_summary.md``.

    Args:
        config, data_root, iters, cfg_options, seed: as :func:`run_fold`.
        work_dir: the run's folder.
        num_folds: K.
        test_scales, mask_thrs: the test settings, their cross product (``None``: the config's own).
        only_folds: run these fold indices only (the others are read if done); default all.
        title: the Markdown heading (default: the config name and schedule).
        results_dir: keep the small per-fold JSONs (``fold<k>.json``) and the summary there instead (e.g. a folder of
            ``benchmarks/results/`` committed with the project, so a later session continues the folds); the
            checkpoints and logs stay in ``work_dir``.

    Returns:
        the summary (``cv_summary.json``'s content).
    """
    work_dir = Path(work_dir)
    out_dir = Path(results_dir) if results_dir is not None else work_dir
    # bad input (data root, fold count, a results or work "folder" that is a file) stops before anything is written
    names = [p.name for p in list_train_samples(data_root)]
    folds = organ_folds(names, num_folds)
    for folder in (out_dir, work_dir):
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f'{folder}: not a folder (the protocol writes its fold results and summary there)')
    work_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / 'folds.json', json.dumps(
        [dict(fold=k, val_names=f, groups=sorted({cv_group_of(n) for n in f})) for k, f in enumerate(folds)],
        indent=1))
    settings = [(s, m) for s in test_scales for m in mask_thrs]
    results = []
    for k, val_names in enumerate(folds):
        out = out_dir / f'fold{k}.json' if results_dir is not None else work_dir / f'fold{k}' / 'figures.json'
        if not out.exists() and (only_folds is None or k in only_folds):
            result = dict(fold=k, **run_fold(config, data_root, val_names, work_dir / f'fold{k}', iters, settings,
                                             cfg_options, seed))
            atomic_write_text(out, json.dumps(result, indent=1))
            print(f'fold {k} ({", ".join(val_names)}): ' + '; '.join(
                f'{label}: ' + ' '.join(f'{f} {v:.3f}' for f, v in figs.items())
                for label, figs in result['figures'].items()), flush=True)
        if out.exists():
            results.append(json.loads(out.read_text()))
    name = Path(str(config.filename if isinstance(config, Config) else config)).stem
    iters_done = sorted({r['iters'] for r in results})
    title = title or f'{name}: {num_folds}-fold grouped CV, {"/".join(map(str, iters_done))} iterations'
    figures = result_figures(results)
    summary = dict(summarize(results, figures), config=str(config.filename if isinstance(config, Config) else config),
                   num_folds=num_folds, folds_done=[r['fold'] for r in results], iters=iters_done, title=title)
    atomic_write_text(out_dir / 'cv_summary.json', json.dumps(summary, indent=1))
    atomic_write_text(out_dir / 'cv_summary.md', summary_markdown(summary, results, title, figures))
    return summary


def result_figures(fold_results: List[dict]) -> List[str]:
    """The figures every fold result holds at every setting, in the first one's order (:data:`TILE_FIGURES`, then
    the class-aware ones of a multi-class model)."""
    if not fold_results:
        return list(TILE_FIGURES)
    per_setting = [set(figs) for r in fold_results for figs in r['figures'].values()]
    first = next(iter(fold_results[0]['figures'].values()))
    return [f for f in first if all(f in s for s in per_setting)]
