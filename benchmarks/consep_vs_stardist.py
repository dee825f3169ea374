"""CoNSeP: the mmcell recipe vs StarDist multi-class on the same folds, for the same training time, scored by the same
code (issue 25, item 5). One fold per call, so each fold is one unit of work on a shared machine. Figures:
``benchmarks/RESULTS.md``, "CoNSeP: recipe vs StarDist multi-class".

    .venv/bin/python benchmarks/consep_vs_stardist.py DATA_ROOT WORK --fold K
        [--reference benchmarks/results/consep_cv/recipe-bf16-2400i_at600] [--results-dir DIR] [--budget-s S]
    .venv/bin/python benchmarks/consep_vs_stardist.py --table [--reference DIR] [--results-dir DIR]

DATA_ROOT: CoNSeP converted to the HW3 layout (``to_hw3.py --format consep``, as ``tools/misc/consep_cv.sh`` does in
its ``WORK/data``; ``classes.json`` names the classes).

1. The fold: :func:`mmcell.apis.crossval.organ_folds` over the tiles of DATA_ROOT (grouped by source image, the
   split of ``cross_validate.py``), checked against the reference run's ``fold<K>.json`` (the mmcell recipe's fold
   file: the same held-out patches, or it stops), whose ``train_s`` is StarDist's training budget.
2. StarDist 0.9.2 from scratch in its own venv (``.venv-stardist``, created by
   ``benchmarks/monuseg_vs_peers.py:ensure_peer_venv`` when missing), multi-class (``--n-classes`` = the classes of
   ``classes.json``), through ``benchmarks/stardist_train_predict.py``: label images, object probabilities (the
   score) and the class of each nucleus (its class probabilities' argmax) of the fold's patches into WORK/fold<K>.
3. Scored by :func:`mmcell.apis.evaluate.evaluate_label_images` with the classes: the figures of the recipe's fold
   files (class-agnostic AP50 / AP at maxDets 1000, AJI, AJI+, PQ = bPQ; contest AP50 class-aware at maxDets 100
   and 1000; AP50 of each class; mPQ and the PQ of each class), written as ``RESULTS/fold<K>.json`` in the shape
   of ``cross_validate.py``'s (with ``peer``), so ``cross_validate.py --compare benchmarks/results/consep_cv
   --reference TAG`` tables both.

``--table`` trains nothing: per fold the recipe's and StarDist's figures and their ratio, mean ± std over the folds
both have done, as Markdown (the table of ``configs/consep/README.md`` and ``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from monuseg_vs_peers import REPO, ensure_peer_venv, run  # noqa: E402  (the peers' venvs and runner: one home)

#: the figure label of StarDist's one test setting (its default thresholds; no tuning on held-out patches)
STARDIST_SETTING = 'StarDist defaults (prob thr 0.5, NMS thr 0.4)'
DEFAULT_REFERENCE = REPO / 'benchmarks' / 'results' / 'consep_cv' / 'recipe-bf16-2400i_at600'
#: the figures of the table, in its order (those both sides' fold files hold: ``mPQ`` came after the first runs)
TABLE_FIGURES = ('contest AP50', 'mPQ', 'AP50 other', 'AP50 inflammatory', 'AP50 epithelial', 'AP50 spindle', 'AP50',
                 'AJI', 'PQ')


def default_results_dir(reference: Path) -> Path:
    """``benchmarks/results/consep_cv/stardist-multiclass_<schedule>`` of this repository, the schedule that of the
    reference run (``recipe-..._at600`` -> ``stardist-multiclass_at600``: StarDist for the seconds of those folds)."""
    schedule = reference.name.rsplit('_', 1)[-1] if '_' in reference.name else reference.name
    return REPO / 'benchmarks' / 'results' / 'consep_cv' / f'stardist-multiclass_{schedule}'


def read_classes(data_root: Path) -> List[str]:
    """The class names of a converted data root (its ``classes.json``), class K first at index K - 1."""
    from mmcell.utils.errors import InputError

    path = data_root / 'classes.json'
    try:
        classes = json.loads(path.read_text())['classes']
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
            raise ValueError('"classes" is not a list of names')
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f'{path}: {type(err).__name__}: {err} (a data root converted by to_hw3.py has it)') from None
    return classes


def fold_of(data_root: Path, fold: int, num_folds: int, reference: Path) -> tuple:
    """The held-out tiles of ``fold`` (the CV's grouped split) and the reference run's fold file (its ``train_s`` is
    the budget).

    Raises:
        InputError: no reference fold file, or one that held out other tiles (not the same folds).
    """
    from mmcell.apis.crossval import organ_folds, read_fold_result
    from mmcell.datasets.hw3_format import list_train_samples
    from mmcell.utils.errors import InputError

    folds = organ_folds([p.name for p in list_train_samples(data_root)], num_folds)
    if not 0 <= fold < len(folds):
        raise InputError(f'--fold {fold}: the split has folds 0..{len(folds) - 1}')
    path = reference / f'fold{fold}.json'
    if not path.is_file():
        raise InputError(f'{path}: no fold file of the reference run (train its fold {fold} first)')
    ref = read_fold_result(path, fold)
    if sorted(ref['val_names']) != sorted(folds[fold]):
        raise InputError(f'{path}: held out {len(ref["val_names"])} other tiles than fold {fold} of {data_root} '
                         f'({len(folds[fold])} tiles): not the same folds')
    return folds, ref


def score_fold(data_root: Path, fold_dir: Path, fold: int, val_names: Sequence[str], classes: Sequence[str],
               timing: dict, reference: Optional[str] = None) -> dict:
    """The fold file of a StarDist fold: its label images in ``fold_dir`` (``timing.json`` of the StarDist side as
    ``timing``) scored as the recipe's folds are; ``reference``: the tag of the run it pairs with."""
    from mmcell.apis.evaluate import evaluate_label_images
    from mmcell.utils.precision import cpu_name

    start = time.time()
    figures = evaluate_label_images(data_root, val_names, fold_dir, classes=classes)
    score_s = (time.time() - start) / max(len(val_names), 1)
    predict_s = float(np.mean([timing['predict_s'][n] for n in val_names]))
    return dict(fold=fold, peer='stardist', config='benchmarks/stardist_train_predict.py --n-classes '
                f'{len(classes)} (StarDist 0.9.2 from scratch)', val_names=list(val_names),
                iters=int(timing['iterations']), train_s=float(timing['train_s']),
                budget_s=timing.get('budget_s'), reference=reference, batch_size=timing.get('batch_size'),
                patch=timing.get('patch'), figures={STARDIST_SETTING: figures},
                s_per_tile={STARDIST_SETTING: predict_s + score_s}, cpu=cpu_name(),
                date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))


def _pm(values: Sequence[float]) -> str:
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return f'{values.mean():.3f}' if len(values) else '-'
    return f'{values.mean():.3f} ± {values.std(ddof=1):.3f}'


def comparison_table(reference: Path, results_dir: Path, figures: Sequence[str] = TABLE_FIGURES) -> str:
    """Markdown: per fold both methods' figures and the ratio recipe / StarDist, then mean ± std over the folds both
    have done and the ratio of the means (the ``train s`` columns: each side's own training seconds)."""
    from mmcell.apis.crossval import compare_results, load_fold_results

    merged = compare_results({'mmcell': load_fold_results(reference), 'stardist': load_fold_results(results_dir)},
                             reference='mmcell')
    both = [r for r in merged if {'mmcell', 'stardist'} <= set(r['figures'])]
    figures = [f for f in figures if all(f in r['figures'][side] for r in both for side in ('mmcell', 'stardist'))]
    head = ['fold', 'train s mmcell / StarDist'] + [f'{f} mmcell / StarDist (ratio)' for f in figures]
    lines = ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']

    def ratio(a: float, b: float) -> str:
        return f'{a / b:.2f}x' if b > 0 else 'n/a'

    for r in both:
        mm, sd = r['figures']['mmcell'], r['figures']['stardist']
        lines.append(f'| {r["fold"]} | {r["train_s"]["mmcell"]:.0f} / {r["train_s"]["stardist"]:.0f} | ' + ' | '.join(
            f'{mm[f]:.3f} / {sd[f]:.3f} ({ratio(mm[f], sd[f])})' for f in figures) + ' |')
    if both:
        cells = []
        for f in figures:
            a = [r['figures']['mmcell'][f] for r in both]
            b = [r['figures']['stardist'][f] for r in both]
            cells.append(f'{_pm(a)} / {_pm(b)} ({ratio(float(np.mean(a)), float(np.mean(b)))})')
        train = [(r['train_s']['mmcell'], r['train_s']['stardist']) for r in both]
        lines.append(f'| mean ± std ({len(both)} folds) | {np.mean([t[0] for t in train]):.0f} / '
                     f'{np.mean([t[1] for t in train]):.0f} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[list] = None) -> None:
    from mmcell.utils import ToolArgumentParser, exit_on_bad_input
    from mmcell.utils.fileio import atomic_write_text

    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('data_root', nargs='?', help='CoNSeP in the HW3 layout (to_hw3.py --format consep)')
    parser.add_argument('work', nargs='?', help="StarDist's models, label images and logs go to WORK/fold<K>")
    parser.add_argument('--fold', type=int, help='the fold to run (one per call)')
    parser.add_argument('--folds', type=int, default=4, help='K of the grouped split (default 4, as the CV)')
    parser.add_argument('--reference', default=str(DEFAULT_REFERENCE),
                        help="the recipe's CV results folder (fold<K>.json: the split and the training seconds)")
    parser.add_argument('--results-dir', help='where fold<K>.json goes (default: benchmarks/results/consep_cv/'
                        "stardist-multiclass_<the reference's schedule>)")
    parser.add_argument('--budget-s', type=float, help="training seconds (default: the reference fold's train_s)")
    parser.add_argument('--steps', type=int, help='train exactly this many batches instead (a smoke run)')
    parser.add_argument('--patch', type=int, default=256, help="StarDist's training patch (default 256)")
    parser.add_argument('--batch-size', type=int, default=4, help="StarDist's batch (default 4)")
    parser.add_argument('--reuse', action='store_true', help='score the predictions in WORK/fold<K> without training')
    parser.add_argument('--table', action='store_true', help='train nothing: print the comparison table')
    args = parser.parse_args(argv)
    reference = Path(args.reference)
    results_dir = Path(args.results_dir) if args.results_dir else default_results_dir(reference)
    if args.table:
        print(exit_on_bad_input(comparison_table, reference, results_dir))
        return
    if args.data_root is None or args.work is None or args.fold is None:
        parser.error('DATA_ROOT WORK --fold K are required (or --table)')
    data_root, work = Path(args.data_root).resolve(), Path(args.work).resolve()
    classes = exit_on_bad_input(read_classes, data_root)
    folds, ref = exit_on_bad_input(fold_of, data_root, args.fold, args.folds, reference)
    val_names = folds[args.fold]
    out = results_dir / f'fold{args.fold}.json'
    if out.exists():
        sys.exit(f'{out}: fold {args.fold} is done (delete the file to run it again)')
    budget = args.budget_s if args.budget_s is not None else float(ref['train_s'])
    fold_dir = work / f'fold{args.fold}'
    fold_dir.mkdir(parents=True, exist_ok=True)
    if not (args.reuse and (fold_dir / 'timing.json').exists()):
        length = ['--steps', str(args.steps)] if args.steps else ['--budget-s', f'{budget:.1f}']
        run([ensure_peer_venv('stardist'), 'benchmarks/stardist_train_predict.py', data_root, fold_dir,
             '--val', *val_names, *length, '--n-classes', str(len(classes)), '--patch', str(args.patch),
             '--batch-size', str(args.batch_size)], fold_dir / 'stardist.log')
    timing = json.loads((fold_dir / 'timing.json').read_text())
    timing['budget_s'] = None if args.steps else budget
    result = exit_on_bad_input(score_fold, data_root, fold_dir, args.fold, val_names, classes, timing,
                               reference.name)
    results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1) + '\n')
    print(f'fold {args.fold}: StarDist {result["iters"]} batches in {result["train_s"]:.0f} s (budget {budget:.0f} s): '
          + ' '.join(f'{f} {v:.3f}' for f, v in result['figures'][STARDIST_SETTING].items() if not math.isnan(v)))
    print(f'wrote {out}\n')
    print(exit_on_bad_input(comparison_table, reference, results_dir))


if __name__ == '__main__':
    main()
