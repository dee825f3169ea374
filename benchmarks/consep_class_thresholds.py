"""Per-class score thresholds for the CoNSeP recipe, chosen by leave-one-fold-out over the grouped CV folds' kept
predictions (issue 25, item 2), against one threshold for every class. Figures: ``configs/consep/README.md`` and
``benchmarks/RESULTS.md``, "CoNSeP: per-class score thresholds".

    .venv/bin/python benchmarks/consep_class_thresholds.py PRED_DIR DATA_ROOT [--out results.json]

PRED_DIR: ``fold<K>.json`` of every fold, every detection of the fold's model on its held-out patches (score, class,
RLE mask; ``benchmarks/consep_rescore.py recipe ... --save-predictions PRED_DIR``). DATA_ROOT: the converted patches.

A score threshold does not change COCO AP (AP ranks the detections; a threshold only cuts the tail of the ranking,
which can lower AP, never raise it), so thresholds are chosen and scored on the figures of the label image a user
gets (``mmcell segment`` paints the detections above the threshold; :func:`~mmcell.evaluation.functional.pathology.
image_figures`): mPQ, bPQ, the PQ of each class, HoVer-Net's F_d and F_c of each class.

For each held-out fold, on the other three folds' predictions pooled:

1. **global**: the one threshold of the grid maximising the mean F_c over the classes;
2. **per class**: from that global threshold, each class's own threshold maximising its F_c, the others held.

F_c (HoVer-Net's classification F1 of class c; counts pooled over the patches) is the objective rather than the
class's PQ: per-image PQ (the PanNuke rule of ``mPQ``) does not charge a class-c false positive on a patch without
class-c nuclei, so it would favour a low threshold for a rare class at no cost; F_c charges every one.
Each rule is then scored on the held-out fold; mean ± std over the 4 folds, beside the fixed default 0.5
(``LABEL_SCORE_THR``).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: the thresholds tried: 0.05 steps to 0.5, 0.1 steps above (the model's test ``score_thr`` is 0.05: nothing below it is
#: kept; at 600 iterations few detections score above 0.5)
GRID = tuple(round(0.05 * k, 2) for k in range(1, 11)) + (0.6, 0.7, 0.8, 0.9)
DEFAULT_THR = 0.5


def load_fold(pred_dir: Path, data_root: Path, fold: int) -> List[dict]:
    """The patches of a fold: GT label map and classes, and every detection (score, label 0-based, RLE)."""
    from mmcell.apis.evaluate import tile_ground_truth
    from mmcell.structures.label_image import instances_to_label_map

    preds = json.loads((pred_dir / f'fold{fold}.json').read_text())
    patches = []
    for k, (name, p) in enumerate(preds.items()):
        gt = tile_ground_truth(data_root, name, k, class_aware=True)
        height, width = gt['ori_shape']
        true_map, true_cls = instances_to_label_map([i['mask'] for i in gt['instances']], np.ones(len(gt['instances'])),
                                                    [i['bbox_label'] for i in gt['instances']], height, width)
        masks = [dict(size=[p['height'], p['width']], counts=c) for c in p['masks']]
        patches.append(dict(name=name, true_map=true_map, true_cls=true_cls, masks=masks,
                            scores=np.asarray(p['scores'], np.float64), labels=np.asarray(p['labels'], np.int64),
                            height=height, width=width))
    return patches


def patch_figures(patches: Sequence[dict], thresholds: Sequence[float], num_classes: int) -> List[dict]:
    """:func:`image_figures` of each patch, the detections of class c kept when scoring >= ``thresholds[c]``."""
    from mmcell.evaluation.functional.pathology import image_figures
    from mmcell.structures.label_image import instances_to_label_map

    thr = np.asarray(thresholds, np.float64)
    out = []
    for p in patches:
        keep = np.flatnonzero(p['scores'] >= thr[p['labels']])
        pred_map, pred_cls = instances_to_label_map([p['masks'][i] for i in keep], p['scores'][keep],
                                                    p['labels'][keep], p['height'], p['width'])
        out.append(image_figures(p['true_map'], p['true_cls'], pred_map, pred_cls, num_classes=num_classes))
    return out


def figures_of(per_patch: Sequence[dict], classes: Sequence[str]) -> Dict[str, float]:
    """The data-set figures of the label images (mPQ, bPQ, PQ / F_c per class, mean F_c, F_d)."""
    from mmcell.evaluation.functional.pathology import summarize_figures

    s = summarize_figures(per_patch, num_classes=len(classes))
    out = dict(mPQ=s['mpq'], bPQ=s['pq'], F_d=s['f1_d'],
               **{'mean F_c': float(np.nanmean([s['f1_c'][k] for k in range(1, len(classes) + 1)]))})
    for k, name in enumerate(classes, start=1):
        out[f'PQ {name}'] = s['class_pq'][k]
    for k, name in enumerate(classes, start=1):
        out[f'F_c {name}'] = s['f1_c'][k]
    return out


class Cache:
    """Per-patch figures of each fold at each threshold vector, computed once."""

    def __init__(self, folds: Dict[int, List[dict]], num_classes: int) -> None:
        self.folds, self.num_classes, self.memo = folds, num_classes, {}

    def get(self, fold: int, thresholds: Sequence[float]) -> List[dict]:
        key = (fold, tuple(float(t) for t in thresholds))
        if key not in self.memo:
            self.memo[key] = patch_figures(self.folds[fold], thresholds, self.num_classes)
        return self.memo[key]

    def pooled(self, folds: Sequence[int], thresholds: Sequence[float]) -> List[dict]:
        return [r for f in folds for r in self.get(f, thresholds)]


def choose(cache: Cache, train_folds: Sequence[int], classes: Sequence[str]) -> tuple:
    """The global threshold (best mean F_c) and the per-class ones (each class's best F_c from the global)."""
    from mmcell.evaluation.functional.pathology import summarize_figures

    n = len(classes)

    def f1c(thresholds):
        return summarize_figures(cache.pooled(train_folds, thresholds), num_classes=n)['f1_c']

    glob = max(GRID, key=lambda t: (np.nanmean(list(f1c([t] * n).values())), -abs(t - DEFAULT_THR)))
    per_class = []
    for c in range(n):
        def score(t, c=c):
            vec = [glob] * n
            vec[c] = t
            return f1c(vec)[c + 1]
        per_class.append(max(GRID, key=lambda t, score=score: (np.nan_to_num(score(t), nan=-1), -abs(t - glob))))
    return glob, per_class


def _pm(values: Sequence[float]) -> str:
    values = np.asarray(values, dtype=float)
    return f'{np.nanmean(values):.3f} ± {np.nanstd(values, ddof=1):.3f}'


def run(pred_dir: Path, data_root: Path, classes: Sequence[str], num_folds: int = 4) -> dict:
    folds = {k: load_fold(pred_dir, data_root, k) for k in range(num_folds)}
    cache = Cache(folds, len(classes))
    rows = []
    for k in range(num_folds):
        start = time.time()
        train = [f for f in range(num_folds) if f != k]
        glob, per_class = choose(cache, train, classes)
        rules = {f'default {DEFAULT_THR:g}': [DEFAULT_THR] * len(classes), 'global (CV)': [glob] * len(classes),
                 'per class (CV)': per_class}
        rows.append(dict(fold=k, thresholds=rules,
                         figures={rule: figures_of(cache.get(k, thr), classes) for rule, thr in rules.items()}))
        print(f'fold {k}: global {glob:g}, per class {dict(zip(classes, per_class))} ({time.time() - start:.0f} s)',
              flush=True)
    return dict(grid=list(GRID), classes=list(classes), folds=rows)


def table(result: dict) -> str:
    """Markdown: mean ± std over the held-out folds per rule, paired differences to the default, thresholds."""
    rows = result['folds']
    rules = list(rows[0]['figures'])
    figures = list(rows[0]['figures'][rules[0]])
    lines = ['| rule | ' + ' | '.join(figures) + ' |', '|---' * (len(figures) + 1) + '|']
    for rule in rules:
        lines.append(f'| {rule} | ' + ' | '.join(_pm([r['figures'][rule][f] for r in rows]) for f in figures) + ' |')
    for rule in rules[1:]:
        lines.append(f'| Δ {rule} − {rules[0]} (paired) | ' + ' | '.join(
            _pm([r['figures'][rule][f] - r['figures'][rules[0]][f] for r in rows]) for f in figures) + ' |')
    if len(rules) > 2:
        lines.append(f'| Δ {rules[2]} − {rules[1]} (paired) | ' + ' | '.join(
            _pm([r['figures'][rules[2]][f] - r['figures'][rules[1]][f] for r in rows]) for f in figures) + ' |')
    lines += ['', '| held-out fold | global (CV) | per class (CV): ' + ' / '.join(result['classes']) + ' |',
              '|---|---|---|']
    for r in rows:
        lines.append(f'| {r["fold"]} | {r["thresholds"]["global (CV)"][0]:g} | '
                     + ' / '.join(f'{t:g}' for t in r['thresholds']['per class (CV)']) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[list] = None) -> None:
    sys.path.insert(0, str(REPO / 'benchmarks'))
    from consep_vs_stardist import read_classes

    from mmcell.utils import ToolArgumentParser, exit_on_bad_input
    from mmcell.utils.fileio import atomic_write_text

    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('pred_dir', help='fold<K>.json of every fold (consep_rescore.py --save-predictions)')
    parser.add_argument('data_root', help='the converted CoNSeP patches (classes.json, train/<name>/)')
    parser.add_argument('--folds', type=int, default=4)
    parser.add_argument('--out', help='write the result JSON and a Markdown table (OUT with .md) here')
    args = parser.parse_args(argv)
    data_root = Path(args.data_root)
    classes = exit_on_bad_input(read_classes, data_root)
    result = exit_on_bad_input(run, Path(args.pred_dir), data_root, classes, args.folds)
    md = table(result)
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(result, indent=1) + '\n')
        atomic_write_text(Path(args.out).with_suffix('.md'), md)
    print(md)


if __name__ == '__main__':
    main()
