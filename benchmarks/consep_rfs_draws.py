"""What repeat-factor sampling draws: a config's training set built as tools/train.py and each grouped CV fold build
it, the image-level class frequencies f(c) that mmengine's ClassBalancedDataset counts (the non-empty training
patches holding class c), their median, and what one pass draws (patches, the share holding each class, the share
of the nuclei drawn per class), without and with the wrapper. No training; figures in benchmarks/RESULTS.md and
configs/consep/README.md ("Repeat-factor sampling").

    python benchmarks/consep_rfs_draws.py configs/consep/mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2400i-rfs_consep.py \
        DATA    # DATA: the CoNSeP patches converted by to_hw3.py --format consep
"""
from __future__ import annotations

import copy
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence

from mmengine.config import Config

from mmcell.apis.crossval import fold_train_config, organ_folds
from mmcell.datasets.dataset_config import cell_dataset_cfg, dataset_type_name
from mmcell.datasets.hw3_format import list_train_samples
from mmcell.utils.errors import InputError, ToolArgumentParser, exit_on_bad_input
from mmcell.utils.setup_env import load_config, register_all_modules


def _shares(dataset, indices: Sequence[int], num_classes: int) -> tuple:
    """(share of the draws holding each class, share of the nuclei drawn per class)."""
    patches, nuclei = Counter(), Counter()
    for i in indices:
        labels = dataset.get_cat_ids(i)
        patches.update(set(labels))
        nuclei.update(labels)
    total = max(1, sum(nuclei.values()))
    return ([patches[c] / max(1, len(indices)) for c in range(num_classes)],
            [nuclei[c] / total for c in range(num_classes)])


def describe(cfg: Config, thr: Optional[float]) -> dict:
    """The training set of ``cfg`` (plain, or inside its ClassBalancedDataset) built; its frequencies and draws."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import ClassBalancedDataset

    wrapper = cfg.train_dataloader.dataset
    own = copy.deepcopy(cell_dataset_cfg(wrapper, f'{cfg.filename}: the training set'))
    own.pipeline = []  # annotations only
    if thr is None:
        if dataset_type_name(wrapper) != 'ClassBalancedDataset':
            raise InputError(f'{cfg.filename}: the training set is no ClassBalancedDataset; pass --thr')
        thr = float(wrapper.oversample_thr)
    plain = DATASETS.build(own)
    plain.full_init()
    balanced = ClassBalancedDataset(plain, oversample_thr=thr)
    classes = list(plain.metainfo['classes'])
    freq, nuclei = _shares(plain, range(len(plain)), len(classes))
    drawn, drawn_nuclei = _shares(plain, balanced.repeat_indices, len(classes))
    return dict(classes=classes, thr=thr, patches=len(plain), draws=len(balanced), freq=freq,
                median=statistics.median(freq), repeat=[max(1.0, math.sqrt(thr / f)) if f else math.nan for f in freq],
                nuclei=nuclei, drawn=drawn, drawn_nuclei=drawn_nuclei)


def _line(tag: str, d: dict) -> str:
    def each(values, fmt: str) -> str:
        return ', '.join(f'{c} {fmt.format(v)}' for c, v in zip(d['classes'], values))

    def pairs(before, after) -> str:
        return ', '.join(f'{c} {a:.1%} -> {b:.1%}' for c, a, b in zip(d['classes'], before, after))

    return '\n'.join([f'{tag}: {d["patches"]} patches -> {d["draws"]} draws per pass (t = {d["thr"]:g})',
                      f'  f(c): {each(d["freq"], "{:.3f}")}; median {d["median"]:.3f}',
                      f'  sqrt(t / f): {each(d["repeat"], "{:.2f}")}',
                      f'  draws holding: {pairs(d["freq"], d["drawn"])}',
                      f'  nuclei drawn: {pairs(d["nuclei"], d["drawn_nuclei"])}'])


def run(config: str, data_root: str, folds: int, thr: Optional[float]) -> List[str]:
    register_all_modules()
    cfg = load_config(config, data_root=data_root)
    lines = [_line("the config's training set", describe(cfg, thr))]
    names = [p.name for p in list_train_samples(data_root)]
    for k, held in enumerate(organ_folds(names, folds) if folds else []):
        fold = fold_train_config(cfg, held, Path('/nonexistent-work-dir'), iters=None)  # nothing is written
        lines.append(_line(f'fold {k} ({len(held)} held out)', describe(fold, thr)))
    return lines


def main(argv: Optional[list] = None) -> None:
    parser = ToolArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='a config whose training set is a ClassBalancedDataset (or pass --thr)')
    parser.add_argument('data_root', help='the HW3 data root (the converted patches)')
    parser.add_argument('--folds', type=int, default=4, help='the grouped CV folds to describe too (0: none)')
    parser.add_argument('--thr', type=float, help="oversample_thr (default: the config's)")
    args = parser.parse_args(argv)
    for line in exit_on_bad_input(run, args.config, args.data_root, args.folds, args.thr):
        print(line)


if __name__ == '__main__':
    main()
