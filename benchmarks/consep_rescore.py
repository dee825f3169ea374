"""Add figures to the fold files of a CoNSeP CV run without training again: the recipe's folds from their kept
checkpoints, StarDist's from its kept label images (issue 25: mPQ and the PQ of each class came after the runs).
The figures go to the fold files and from there to benchmarks/RESULTS.md ("CoNSeP: recipe vs StarDist multi-class").

    .venv/bin/python benchmarks/consep_rescore.py recipe RESULTS_DIR CV_WORK DATA_ROOT --fold K [--config CONFIG]
        [--save-predictions DIR]
    .venv/bin/python benchmarks/consep_rescore.py stardist RESULTS_DIR STARDIST_WORK DATA_ROOT --fold K

``recipe``: the fold's checkpoint ``CV_WORK/fold<K>/iter_<iters>.pth`` predicts the fold's held-out patches again
through :func:`mmcell.apis.evaluate.predict_tile_samples` at the fold file's test setting (CONFIG: default the
recipe's; the test pipeline and ``test_cfg`` are what count) and :func:`~mmcell.apis.evaluate.score_tile_samples`
scores them, as ``cross_validate.py`` did. ``stardist``: ``STARDIST_WORK/fold<K>``'s label images are scored by
:func:`~mmcell.apis.evaluate.evaluate_label_images`, as ``consep_vs_stardist.py`` did.

Only the figures the fold file lacks are added; the ones it has stay as they are, and the largest difference between
them and their recomputed value is printed (0 when the predictions are reproduced: the check that the new figures
describe the same models). ``--save-predictions DIR`` also writes every detection of the recipe's fold (score,
class, RLE mask per patch) to ``DIR/fold<K>.json`` for ``benchmarks/consep_class_thresholds.py``;
``--from-predictions DIR`` scores those instead of predicting again. Every recomputed figure is also kept in the
fold file under ``rescored`` (with its date): a run scored later pairs with those, through the same code.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict, Optional

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / 'configs' / 'consep' / 'mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2400i_consep.py'


def merge_figures(old: Dict[str, float], new: Dict[str, float]) -> tuple:
    """``old`` with the figures only ``new`` has appended, and the largest ``|old - new|`` of the figures both have
    (NaN on both sides counts as equal)."""
    diff = 0.0
    for key, value in old.items():
        if key in new and not (value != value and new[key] != new[key]):
            diff = max(diff, abs(float(value) - float(new[key])))
    return dict(old, **{k: v for k, v in new.items() if k not in old}), diff


def save_predictions(samples: list, names: list, path: Path) -> None:
    """Every detection of each patch: ``{name: {height, width, scores, labels, masks (RLE counts)}}``."""
    import numpy as np
    import pycocotools.mask as mask_util

    from mmcell.utils.fileio import atomic_write_text

    out = {}
    for name, sample in zip(names, samples):
        pred = sample['pred_instances']
        masks = pred['masks']
        if not isinstance(masks, (list, tuple)):  # dense (N, H, W), e.g. the empty tensor of a patch without detections
            masks = [mask_util.encode(np.asfortranarray(m.astype(np.uint8))) for m in np.asarray(masks, bool)]
        height, width = sample['ori_shape']
        out[name] = dict(height=int(height), width=int(width), scores=pred['scores'].tolist(),
                         labels=pred['labels'].tolist(),
                         masks=[m['counts'].decode() if isinstance(m['counts'], bytes) else m['counts']
                                for m in masks])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(out))


def load_predictions(path: Path, data_root: Path) -> list:
    """The metric data samples of a fold from its kept detections (:func:`save_predictions`): the same figures
    as the predictions they were saved from (boxes are the masks' own: the segm figures do not read them)."""
    import pycocotools.mask as mask_util
    import torch

    from mmcell.apis.evaluate import tile_ground_truth

    samples = []
    for k, (name, p) in enumerate(json.loads(path.read_text()).items()):
        rles = [dict(size=[p['height'], p['width']], counts=c.encode()) for c in p['masks']]
        boxes = mask_util.toBbox(rles).reshape(-1, 4) if rles else torch.zeros(0, 4).numpy()
        boxes[:, 2:] += boxes[:, :2]
        samples.append(dict(tile_ground_truth(data_root, name, k, class_aware=True), pred_instances=dict(
            bboxes=torch.as_tensor(boxes, dtype=torch.float32), scores=torch.tensor(p['scores']),
            labels=torch.tensor(p['labels'], dtype=torch.int64), masks=rles)))
    return samples


def rescore_recipe(fold_file: Path, work: Path, data_root: Path, config: Path,
                   predictions: Optional[Path], from_predictions: bool = False) -> tuple:
    from mmcell.apis.crossval import _config_test_setting, setting_label, with_test_setting
    from mmcell.apis.evaluate import LABEL_SCORE_THR, predict_tile_samples, score_tile_samples
    from mmcell.utils.setup_env import load_config, register_all_modules

    register_all_modules()
    result = json.loads(fold_file.read_text())
    base = load_config(str(config), None, str(data_root))
    label = setting_label(*_config_test_setting(base))
    if list(result['figures']) != [label]:
        raise ValueError(f'{fold_file}: scored at {list(result["figures"])}, {config.name} tests at {label!r}')
    kept = None if predictions is None else predictions / f'fold{result["fold"]}.json'
    if from_predictions:
        if list(json.loads(kept.read_text())) != list(result['val_names']):
            raise ValueError(f'{kept}: not the {len(result["val_names"])} held-out patches of {fold_file}')
        samples, classes = load_predictions(kept, data_root), tuple(base.metainfo['classes'])
    else:
        checkpoint = work / f'fold{result["fold"]}' / f'iter_{result["iters"]}.pth'
        samples, classes = predict_tile_samples(with_test_setting(base), str(checkpoint), data_root,
                                                result['val_names'])
        if kept is not None:
            save_predictions(samples, result['val_names'], kept)
    figures = score_tile_samples(samples, pathology_score_thr=LABEL_SCORE_THR, classes=classes or None)
    return result, label, figures


def rescore_stardist(fold_file: Path, work: Path, data_root: Path) -> tuple:
    sys.path.insert(0, str(REPO / 'benchmarks'))
    from consep_vs_stardist import STARDIST_SETTING, read_classes

    from mmcell.apis.evaluate import evaluate_label_images

    result = json.loads(fold_file.read_text())
    figures = evaluate_label_images(data_root, result['val_names'], work / f'fold{result["fold"]}',
                                    classes=read_classes(data_root))
    return result, STARDIST_SETTING, figures


def main(argv: Optional[list] = None) -> None:
    from mmcell.utils import ToolArgumentParser, exit_on_bad_input
    from mmcell.utils.fileio import atomic_write_text

    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('kind', choices=('recipe', 'stardist'))
    parser.add_argument('results_dir', help='the run\'s fold files (fold<K>.json)')
    parser.add_argument('work', help='recipe: the CV work dir (fold<K>/iter_<N>.pth); stardist: its work dir')
    parser.add_argument('data_root', help='CoNSeP in the HW3 layout (the CV\'s WORK/data)')
    parser.add_argument('--fold', type=int, required=True)
    parser.add_argument('--config', default=str(DEFAULT_CONFIG), help='recipe: the config of the test setting')
    parser.add_argument('--save-predictions', help='recipe: also write every detection to DIR/fold<K>.json')
    parser.add_argument('--from-predictions', help='recipe: score the detections kept in DIR/fold<K>.json instead '
                        'of predicting again')
    args = parser.parse_args(argv)
    fold_file = Path(args.results_dir) / f'fold{args.fold}.json'
    if args.kind == 'recipe':
        kept = args.from_predictions or args.save_predictions
        result, label, figures = exit_on_bad_input(
            rescore_recipe, fold_file, Path(args.work), Path(args.data_root), Path(args.config),
            Path(kept) if kept else None, bool(args.from_predictions))
    else:
        result, label, figures = exit_on_bad_input(rescore_stardist, fold_file, Path(args.work), Path(args.data_root))
    merged, diff = merge_figures(result['figures'][label], figures)
    added = [k for k in merged if k not in result['figures'][label]]
    kept = result['figures'][label]
    moved = ', '.join(f'{k} {kept[k]:.4f} -> {figures[k]:.4f}' for k in kept
                      if k in figures and abs(kept[k] - figures[k]) > 1e-9)
    result['figures'][label] = merged
    # every figure as scored now, beside the kept ones: a run scored today pairs with these (same inference code)
    result['rescored'] = dict(date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), figures={label: figures})
    atomic_write_text(fold_file, json.dumps(result, indent=1) + '\n')
    print(f'{fold_file}: added {", ".join(f"{k} {merged[k]:.4f}" for k in added) or "nothing"}; '
          f'largest difference of the kept figures to their recomputed value: {diff:.2e}'
          + (f' ({moved})' if moved else ''))


if __name__ == '__main__':
    main()
