"""K-fold cross-validation over labelled tiles, folds grouped by organ or source image: the protocol that chooses
recipe settings.

One 3-tile validation split misleads: differences of a few points between test settings are noise there (issue 19).
:func:`cross_validate` trains a config once per fold (the fold's tiles held out, the rest trained on, optionally
with a shorter *screening* schedule), scores each fold's model on its held-out tiles at one or more test settings
(test resize x mask threshold) with the project's scoring (:func:`mmcell.apis.evaluate.evaluate_tiles`: AP50 / AP
at maxDets 1000, AJI, AJI+, PQ at score >= 0.5; for a multi-class model also the class-aware contest AP50, the
AP50 of each class, mPQ and the PQ of each class), and summarises mean +- std over the folds per figure, with the
paired difference of every setting to the first (the same folds and models: the std of that difference, not of the
figures, says whether a difference is real).

Folds are grouped (:func:`cv_group_of`) by organ for MoNuSeg-style names (:func:`organ_of`: the TCGA tissue source
site code), so no organ is both trained on and scored, as on truly unseen tissue, and by source image for patch names
``<split>_<image>_<patch>`` (CoNSeP patches, :func:`source_image_of`), whose neighbouring patches are
near-duplicates. Each fold writes ``WORK/fold<k>/figures.json`` (or ``RESULTS/fold<k>.json`` with ``results_dir``)
and is skipped when that file exists, so a run can be continued fold by fold, by a later session too.

*More data* is screened the same way: ``extra_train`` data roots join every fold's training set, never its held-out
tiles (:mod:`mmcell.datasets.extra_train`, the one home that ``tools/train.py --extra-train`` uses too: an mmengine
``ConcatDataset``, each part repeated so the pool is drawn by pixel area), and are recorded in each fold file.
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
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmcell.apis.evaluate import TILE_FIGURES, evaluate_tiles
from mmcell.datasets.dataset_config import cell_dataset_cfg, leaf_dataset_cfgs
from mmcell.datasets.extra_train import extra_train_parts, with_extra_train
from mmcell.datasets.hw3_format import list_train_samples
from mmcell.utils.errors import InputError, one_line
from mmcell.utils.fileio import atomic_write_text
from mmcell.utils.precision import cpu_name
from mmcell.utils.setup_env import load_config, prepare_launch, register_all_modules

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
                      iters: Optional[int] = None, seed: Optional[int] = 0,
                      extra_parts: Optional[Sequence[dict]] = None) -> Config:
    """The config that trains one fold: every tile but ``val_names`` (and with ``extra_parts``, from
    :func:`extra_train_parts`, the extra data: :func:`with_extra_train`), no validation loop, one final checkpoint,
    ``val_names`` set on the data set inside any wrapper (:func:`mmcell.datasets.dataset_config.cell_dataset_cfg`:
    a ``ClassBalancedDataset`` recipe holds out its fold's tiles as a plain one does),
    and the config's training precision applied as ``tools/train.py`` applies it
    (:func:`mmcell.utils.prepare_launch`: the bf16 recipe's ``precision='auto'`` trains in bf16 where the CPU has
    native bf16 units)."""
    cfg = screening_config(cfg, iters) if iters else copy.deepcopy(cfg)
    # the data sets themselves, inside any wrapper (a ClassBalancedDataset, a RepeatDataset): the one lookup
    own = cell_dataset_cfg(cfg.train_dataloader.dataset, f'{cfg.filename}: the training set')
    if 'val_names' not in own:
        raise ValueError(f'{cfg.filename}: the train dataset has no val_names (a fixed split); the protocol needs one')
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for dataset in leaf_dataset_cfgs(cfg[split].dataset) if cfg.get(split) else []:
            if 'val_names' in dataset:
                dataset['val_names'] = list(val_names)
    if extra_parts and len(extra_parts) > 1:
        cfg = with_extra_train(cfg, extra_parts)
    # the fold's model is scored afterwards at every test setting, so training runs without a validation loop
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.train_cfg.val_interval = int(cfg.train_cfg.max_iters) + 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=int(cfg.train_cfg.max_iters),
                                        max_keep_ckpts=1, save_best=None)
    cfg.work_dir = str(work_dir)
    if seed is not None:
        cfg.randomness = dict(seed=seed)
    cfg.experiment_name = f'{Path(work_dir).name}_{time.strftime("%Y%m%d_%H%M%S")}'
    return prepare_launch(cfg)  # the config's precision (the bf16 recipe: 'auto') chosen as tools/train.py does


def _per_label(value, label: str):
    return value.get(label, math.nan) if isinstance(value, dict) else value


def _stat(values: Sequence[float]) -> dict:
    values = np.asarray(values, dtype=float)
    if not len(values):
        return dict(mean=math.nan, std=math.nan, n=0)
    return dict(mean=float(values.mean()), std=float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                n=int(len(values)))


def summarize(fold_results: List[dict], figures: Sequence[str] = TILE_FIGURES) -> dict:
    """Mean and std (over folds, ddof 1) per setting and figure, and of each setting's paired difference to the
    first setting (same folds).

    A setting missing from some folds (a config compared by :func:`compare_results` that has not done every fold
    yet) is summarised over the folds that have it (``n``), and its paired difference over the folds both it and
    the first setting have. ``train_s`` of a fold is one number, or one per setting (a comparison of configs).
    """
    settings: List[str] = []
    for r in fold_results:
        settings += [label for label in r['figures'] if label not in settings]
    out: dict = dict(folds=len(fold_results), settings={}, paired_difference={})
    for label in settings:
        done = [r for r in fold_results if label in r['figures']]
        out['settings'][label] = {fig: _stat([r['figures'][label][fig] for r in done]) for fig in figures}
    for label in settings[1:]:
        both = [r for r in fold_results if label in r['figures'] and settings[0] in r['figures']]
        out['paired_difference'][label] = {
            fig: dict(_stat([r['figures'][label][fig] - r['figures'][settings[0]][fig] for r in both]),
                      folds=[r['fold'] for r in both]) for fig in figures}
    per_label = any(isinstance(r['train_s'], dict) for r in fold_results)
    if per_label:
        out['train_s'] = {label: _stat([_per_label(r['train_s'], label) for r in fold_results
                                        if label in r['figures']]) for label in settings}
    else:
        out['train_s'] = _stat([r['train_s'] for r in fold_results])
    return out


def _pm(stat: dict) -> str:
    return f'{stat["mean"]:.3f} ± {stat["std"]:.3f}' if not math.isnan(stat['std']) else f'{stat["mean"]:.3f}'


def summary_markdown(summary: dict, fold_results: List[dict], title: str,
                     figures: Sequence[str] = TILE_FIGURES, row_name: str = 'setting',
                     paired_note: str = 'same folds, same models', intro: Optional[str] = None) -> str:
    """The summary as Markdown: mean ± std per setting, the paired differences, then one row per fold.

    ``row_name`` / ``paired_note`` / ``intro``: the words of a comparison of configs (:func:`comparison_markdown`).
    """
    per_label = isinstance(summary['train_s'], dict) and 'mean' not in summary['train_s']
    lines = [f'## {title}', '', intro or (
        f'{summary["folds"]} of {summary.get("num_folds", summary["folds"])} folds grouped by organ / source image '
        'done; '
        'mean ± std over them (std with ddof 1).'), '']
    extra = ['folds', 'train s (mean)'] if per_label else []
    lines += [f'| {row_name} | ' + ' | '.join(extra + list(figures)) + ' |',
              '|---|' + '---|' * (len(extra) + len(figures))]
    for label, stats in summary['settings'].items():
        cells = [str(stats[figures[0]]['n']), f'{summary["train_s"][label]["mean"]:.0f}'] if per_label else []
        lines.append(f'| {label} | ' + ' | '.join(cells + [_pm(stats[f]) for f in figures]) + ' |')
    if summary['paired_difference']:
        first = next(iter(summary['settings']))
        lines += ['', f'Paired difference to "{first}" ({paired_note}):', '',
                  f'| {row_name} | ' + ' | '.join((['folds'] if per_label else []) + [f'Δ{f}' for f in figures])
                  + ' |', '|---|' + '---|' * (len(figures) + per_label)]
        for label, stats in summary['paired_difference'].items():
            cells = [str(stats[figures[0]]['n'])] if per_label else []
            lines.append(f'| {label} | ' + ' | '.join(cells + [
                f'{stats[f]["mean"]:+.3f} ± {stats[f]["std"]:.3f}' if stats[f]['n'] > 1 else
                (f'{stats[f]["mean"]:+.3f}' if stats[f]['n'] else '-') for f in figures]) + ' |')
    lines += ['', f'| fold | held-out tiles (groups) | train s | {row_name} | ' + ' | '.join(figures) + ' |',
              '|---|---|---|---|' + '---|' * len(figures)]
    for r in fold_results:
        organs = ', '.join(sorted({cv_group_of(n) for n in r['val_names']}))
        for label, figs in r['figures'].items():
            lines.append(f'| {r["fold"]} | {len(r["val_names"])} ({organs}) | {_per_label(r["train_s"], label):.0f} | '
                         f'{label} | ' + ' | '.join(f'{figs[f]:.3f}' for f in figures) + ' |')
    return '\n'.join(lines) + '\n'


def load_fold_results(folder: Union[str, Path]) -> List[dict]:
    """The fold files of one run, by fold: ``folder/fold<k>.json`` (a results folder) or
    ``folder/fold<k>/figures.json`` (a work folder).

    Raises:
        InputError: a fold file that is not a fold's figures (one line naming it).
    """
    folder = Path(folder)
    paths: Dict[int, Path] = {}
    for path in list(folder.glob('fold*.json')) + list(folder.glob('fold*/figures.json')):
        stem = path.stem if path.name != 'figures.json' else path.parent.name
        if stem[4:].isdigit():
            paths.setdefault(int(stem[4:]), path)
    return [read_fold_result(paths[k], k) for k in sorted(paths)]


def read_fold_result(path: Union[str, Path], fold: int) -> dict:
    """One fold file (``fold<k>.json`` or ``fold<k>/figures.json``).

    Raises:
        InputError: not valid JSON, or not the figures of fold ``fold`` (one line naming the file).
    """
    try:
        result = json.loads(Path(path).read_text())
        if not isinstance(result, dict) or result.get('fold') != fold or not isinstance(result.get('figures'), dict):
            raise ValueError(f'not the figures of fold {fold}')
    except ValueError as err:
        raise InputError(f'{path}: {one_line(err)}') from None
    return result


def compare_results(runs: Dict[str, List[dict]], reference: Optional[str] = None,
                    setting: Optional[str] = None) -> List[dict]:
    """The fold results of several configs as one run whose "settings" are the configs, for :func:`summarize`.

    Args:
        runs: config label -> its fold results (:func:`load_fold_results`).
        reference: the label the others are paired with (first in the output; default the first of ``runs``).
        setting: the test setting compared (default: the first setting of the reference's first fold). A peer
            method's fold (a file with ``peer``, e.g. ``benchmarks/consep_vs_stardist.py``'s) is scored at its one
            setting of its own, and compared at that one.

    Returns:
        one dict per fold any config has done: ``fold``, ``val_names``, ``figures={label: figures}`` and
        ``train_s={label: seconds}``.

    Raises:
        InputError: an unknown reference, a run without that setting, or runs whose fold k held out other tiles.
    """
    labels = list(runs)
    if reference is not None:
        if reference not in runs:
            raise InputError(f'reference {reference!r}: not one of the runs {labels}')
        labels = [reference] + [label for label in labels if label != reference]
    done = [r for label in labels for r in runs[label]]
    if setting is None and done:
        setting = next(iter((runs[labels[0]] or done)[0]['figures']))
    merged: Dict[int, dict] = {}
    for label in labels:
        for r in runs[label]:
            # a peer method's fold (``peer`` in its file: StarDist, ...) has one setting, its own: compared as it is
            own = next(iter(r['figures'])) if r.get('peer') and len(r['figures']) == 1 else setting
            if own not in r['figures']:
                raise InputError(f'{label}: fold {r["fold"]} was not scored at {setting!r} '
                                 f'(it has {sorted(r["figures"])})')
            fold = merged.setdefault(r['fold'], dict(fold=r['fold'], val_names=list(r['val_names']), figures={},
                                                     train_s={}))
            if sorted(fold['val_names']) != sorted(r['val_names']):
                raise InputError(f'{label}: fold {r["fold"]} held out {r["val_names"]}, another run '
                                 f'{fold["val_names"]}: not the same folds')
            fold['figures'][label] = r['figures'][own]
            fold['train_s'][label] = r['train_s']
    return [merged[k] for k in sorted(merged)]


def comparison_markdown(results_root: Union[str, Path], reference: str, setting: Optional[str] = None,
                        title: Optional[str] = None, figures: Optional[Sequence[str]] = None) -> str:
    """The comparison of every run under ``results_root`` (one folder of fold files per config) with ``reference``
    (a folder name): mean ± std per config, paired differences to the reference, one row per fold and config.
    Rebuilt from the fold files alone; also written to ``results_root/summary.{md,json}``. ``figures``: default
    those every run holds (:func:`result_figures`: a multi-class model's class-aware ones too, as the CV summary).

    Raises:
        InputError: no runs there, or :func:`load_fold_results` / :func:`compare_results` refuse them.
    """
    root = Path(results_root)
    runs = {p.name: load_fold_results(p) for p in sorted(root.iterdir()) if p.is_dir()} if root.is_dir() else {}
    runs = {label: r for label, r in runs.items() if r}
    if not runs:
        raise InputError(f'{root}: no fold files (<config tag>/fold<k>.json) to compare')
    if reference not in runs:
        raise InputError(f'{root}: no run {reference!r} with fold files (the runs there: {sorted(runs)})')
    try:
        merged = compare_results(runs, reference, setting)
    except InputError as err:  # the labels are the folders under root: name them as paths
        raise InputError(f'{root}/{err}') from None
    setting = setting or next(iter(runs[reference][0]['figures']))
    figures = list(figures) if figures is not None else result_figures(merged)
    summary = summarize(merged, figures)
    iters = {label: sorted({r.get('iters') for r in rs}) for label, rs in runs.items()}
    intro = (f'{len(merged)} fold{"s" * (len(merged) != 1)} grouped by organ / source image with results; '
             f'each config at {setting}; '
             'mean ± std over its '
             'folds (std with ddof 1). ' + '; '.join(
                 f'{label}: {"/".join(map(str, iters[label]))} iterations' for label in summary['settings']) + '.')
    text = summary_markdown(summary, merged, title or f'Organ-grouped CV: configs compared ({root.name})', figures,
                            row_name='config', paired_note='same folds, models trained separately', intro=intro)
    atomic_write_text(root / 'summary.md', text)
    atomic_write_text(root / 'summary.json', json.dumps(dict(summary, reference=reference, setting=setting,
                                                             iters=iters), indent=1))
    return text


def run_fold(config: Union[str, Config], data_root: Union[str, Path], val_names: Sequence[str],
             work_dir: Union[str, Path], iters: Optional[int] = None,
             test_settings: Sequence[tuple] = ((None, None), ), cfg_options: Optional[dict] = None,
             seed: Optional[int] = 0, extra_train: Sequence[Union[str, Path]] = ()) -> dict:
    """Train ``config`` on every tile of ``data_root`` but ``val_names`` (plus every sample of the
    ``extra_train`` data roots) and score the model on ``val_names`` only.

    Args:
        config: the recipe (a config with a fixed ``val_names`` split, e.g. the MoNuSeg ones).
        data_root: the HW3-layout data.
        val_names: the fold's held-out tiles.
        work_dir: the fold's folder (config, log, checkpoint, ``figures.json``).
        iters: screening schedule length (default: the config's).
        test_settings: ``(scale, mask_thr)`` pairs (``None``: the config's own).
        cfg_options: overrides merged into the config first.
        seed: training seed (``None``: mmengine draws one).
        extra_train: HW3 data roots whose samples join the training set only (:func:`extra_train_parts`).

    Returns:
        ``dict(val_names, iters, full_iters, precision, seed, extra_train, train_parts, train_s,
        figures={setting label: {figure: value}}, s_per_tile, checkpoint, cpu, torch_threads, date)``;
        ``train_parts``: each training part's data root, samples and repeat; ``train_s`` counts from building the
        Runner to the end of training.
    """
    register_all_modules()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    base = load_config(config, cfg_options, str(data_root))
    parts = extra_train_parts(data_root, val_names, extra_train) if extra_train else None
    cfg = fold_train_config(base, val_names, work_dir, iters, seed, parts)
    precision = 'bf16' if cfg.optim_wrapper.get('type') == 'BF16AutocastOptimWrapper' else 'fp32'
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
    return dict(val_names=list(val_names), iters=int(cfg.train_cfg.max_iters),
                full_iters=int(base.train_cfg.max_iters), precision=precision, seed=seed,
                extra_train=[str(Path(r).resolve()) for r in extra_train],
                train_parts=[{k: p[k] for k in ('data_root', 'samples', 'repeat')} for p in parts or []],
                train_s=train_s,
                figures=figures, s_per_tile=s_tile, checkpoint=str(checkpoint), cpu=cpu_name(),
                torch_threads=torch.get_num_threads(), date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))


def kept_fold_missing(path: Union[str, Path], fold: int, base: Config, fold_dir: Union[str, Path],
                      test_settings: Sequence[tuple]) -> tuple:
    """The test settings a kept fold file lacks, and the checkpoint that can score them.

    Args:
        path: the fold file (``fold<k>.json`` or ``fold<k>/figures.json``).
        fold: its index.
        base: the loaded recipe config (its own test setting resolves ``None``).
        fold_dir: the fold's work folder, holding ``iter_<iters>.pth``.
        test_settings: ``(scale, mask_thr)`` pairs (``None``: the config's own).

    Returns:
        ``(result, [(label, scale, mask_thr), ...], checkpoint)``.

    Raises:
        InputError: a setting is missing and the fold's checkpoint is gone (one line naming both).
    """
    result = read_fold_result(path, fold)
    missing = [(label, scale, mask_thr) for scale, mask_thr in test_settings
               if (label := setting_label(*_resolved(base, scale, mask_thr))) not in result['figures']]
    checkpoint = Path(fold_dir) / f'iter_{int(result["iters"])}.pth'
    if missing and not checkpoint.is_file():
        raise InputError(f'{path}: has no "{missing[0][0]}" figures and its checkpoint {checkpoint} is gone '
                         '(score it where the fold trained, or train it again in another results folder)')
    return result, missing, checkpoint


def score_kept_fold(path: Union[str, Path], fold: int, base: Config, data_root: Union[str, Path],
                    fold_dir: Union[str, Path], test_settings: Sequence[tuple]) -> List[str]:
    """Score a kept fold at the test settings its file lacks, from its checkpoint, without training again.

    A test setting chosen after the folds ran (a test scale, a mask threshold) is then compared on the same models
    (the summary's paired difference between settings). The fold file gains the new settings' figures and seconds
    per tile; the ones it has stay as they are.

    Args:
        path, fold, base, fold_dir, test_settings: as :func:`kept_fold_missing`.
        data_root: as :func:`run_fold`.

    Returns:
        the labels of the settings scored now (empty when the file had them all).

    Raises:
        InputError: as :func:`kept_fold_missing`.
    """
    result, missing, checkpoint = kept_fold_missing(path, fold, base, fold_dir, test_settings)
    if not missing:
        return []
    register_all_modules()
    if not isinstance(result.get('s_per_tile'), dict):
        result['s_per_tile'] = {}
    for label, scale, mask_thr in missing:
        t0 = time.time()
        result['figures'][label] = evaluate_tiles(with_test_setting(base, scale, mask_thr), str(checkpoint),
                                                  data_root, list(result['val_names']))
        result['s_per_tile'][label] = (time.time() - t0) / max(len(result['val_names']), 1)
    atomic_write_text(Path(path), json.dumps(result, indent=1) + '\n')
    print(f'fold {fold}: kept model scored at ' + '; '.join(label for label, _, _ in missing), flush=True)
    return [label for label, _, _ in missing]


def _resolved(cfg: Config, scale: Optional[float], mask_thr: Optional[float]) -> tuple:
    own_scale, own_thr = _config_test_setting(cfg)
    return (own_scale if scale is None else scale), (own_thr if mask_thr is None else mask_thr)


def _check_same_run(path: Path, result: dict, config: str, val_names: Sequence[str], iters: Optional[int],
                    extra_train: Sequence[Union[str, Path]] = ()) -> None:
    """A fold file kept from an earlier sitting must be the same run (config, schedule, held-out tiles, extra
    training data: compared by folder name, as the config)."""
    if sorted(result['val_names']) != sorted(val_names):
        raise InputError(f'{path}: held out {result["val_names"]}, this split holds out {list(val_names)}')
    if iters and result.get('iters') != iters:
        raise InputError(f'{path}: {result.get("iters")} iterations, this run {iters} (another results folder)')
    if result.get('config') and Path(result['config']).name != Path(config).name:
        raise InputError(f'{path}: from {result["config"]}, this run is {config} (another results folder)')
    kept, now = [Path(r).name for r in result.get('extra_train') or []], [Path(r).name for r in extra_train]
    if kept != now:
        raise InputError(f'{path}: extra training data {kept or "none"}, this run {now or "none"} '
                         '(another results folder)')


def cross_validate(config: Union[str, Config], data_root: Union[str, Path], work_dir: Union[str, Path],
                   num_folds: int = 4, iters: Optional[int] = None, test_scales: Sequence[Optional[float]] = (None, ),
                   mask_thrs: Sequence[Optional[float]] = (None, ), only_folds: Optional[Sequence[int]] = None,
                   cfg_options: Optional[dict] = None, seed: Optional[int] = 0,
                   title: Optional[str] = None, results_dir: Optional[Union[str, Path]] = None,
                   extra_train: Sequence[Union[str, Path]] = ()) -> dict:
    """The protocol: grouped folds (:func:`organ_folds`), one model per fold, every test setting scored, the summary
    written.

    Writes ``WORK/folds.json`` (the folds), each fold's figures to ``WORK/fold<k>/figures.json`` or, with
    ``results_dir``, ``RESULTS/fold<k>.json`` (a fold whose file exists is not trained again: continue a run; one
    that lacks a test setting asked for is scored at it from its checkpoint, :func:`score_kept_fold`), and
    the summary of the folds done so far: ``WORK/cv_summary.json`` and ``WORK/cv_summary.md``.

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
        extra_train: HW3 data roots that join every fold's training set, never its held-out tiles
            (:func:`extra_train_parts`; recorded in each fold file, a kept fold of other extra data is refused).

    Returns:
        the summary (``cv_summary.json``'s content).

    Raises:
        InputError: a fold file there from another config, schedule, fold split or extra training data, or an
            extra data root that is not one or overlaps ``data_root`` (one line naming it).
    """
    work_dir = Path(work_dir)
    out_dir = Path(results_dir) if results_dir is not None else work_dir
    # bad input (data root, fold count, a results or work "folder" that is a file, kept folds of another run) stops
    # before anything is written or trained
    names = [p.name for p in list_train_samples(data_root)]
    folds = organ_folds(names, num_folds)
    if extra_train:
        extra_train_parts(data_root, folds[0], extra_train)  # a bad extra folder stops here
    for folder in (out_dir, work_dir):
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f'{folder}: not a folder (the protocol writes its fold results and summary there)')
    settings = [(s, m) for s in test_scales for m in mask_thrs]
    config_path = str(config.filename if isinstance(config, Config) else config)
    outs = [out_dir / f'fold{k}.json' if results_dir else work_dir / f'fold{k}' / 'figures.json'
            for k in range(len(folds))]
    base = load_config(config, cfg_options, str(data_root))  # resolves the config's own test setting
    for k, (val_names, out) in enumerate(zip(folds, outs)):
        if out.exists():
            _check_same_run(out, read_fold_result(out, k), config_path, val_names, iters, extra_train)
            if only_folds is None or k in only_folds:  # a setting to score without its checkpoint stops here too
                kept_fold_missing(out, k, base, work_dir / f'fold{k}', settings)
    work_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / 'folds.json', json.dumps(
        [dict(fold=k, val_names=f, groups=sorted({cv_group_of(n) for n in f})) for k, f in enumerate(folds)],
        indent=1))
    results = []
    for k, (val_names, out) in enumerate(zip(folds, outs)):
        if out.exists() and (only_folds is None or k in only_folds):
            score_kept_fold(out, k, base, data_root, work_dir / f'fold{k}', settings)
        if not out.exists() and (only_folds is None or k in only_folds):
            result = dict(fold=k, config=config_path, **run_fold(config, data_root, val_names, work_dir / f'fold{k}',
                                                                 iters, settings, cfg_options, seed,
                                                                 extra_train))
            if results_dir:
                result.pop('checkpoint')
            atomic_write_text(out, json.dumps(result, indent=1) + '\n')
            print(f'fold {k} ({", ".join(val_names)}): ' + '; '.join(
                f'{label}: ' + ' '.join(f'{f} {v:.3f}' for f, v in figs.items())
                for label, figs in result['figures'].items()), flush=True)
        if out.exists():
            results.append(read_fold_result(out, k))
    name = Path(str(config.filename if isinstance(config, Config) else config)).stem
    iters_done = sorted({r['iters'] for r in results})
    title = title or (f'{name}: {num_folds}-fold grouped CV, {"/".join(map(str, iters_done))} iterations'
                      + (f', trained with {" + ".join(Path(r).name for r in extra_train)} too' if extra_train else ''))
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
