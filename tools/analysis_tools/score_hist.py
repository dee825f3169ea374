"""Score histogram (matched vs unmatched at IoU 0.5) and contest-AP50 sweep over score thresholds.

    python tools/analysis_tools/score_hist.py CONFIG CHECKPOINT [--split val] [--out-dir DIR]
    python tools/analysis_tools/score_hist.py --results preds.json --gt gt_coco.json --out-dir DIR

Writes ``score_hist.png`` (histogram + sweep) and ``score_sweep.md`` under ``--out-dir`` (default
``work_dirs/<config>/analysis``) and prints the sweep table.
"""
from __future__ import annotations

import os.path as osp

import numpy as np

from mmcell import visualization
from mmcell.apis.predictions import add_source_args, load_source
from mmcell.evaluation.functional import coco as analysis
from mmcell.utils import ToolArgumentParser, probabilities, probability
from mmcell.utils.fileio import atomic_write_text

DEFAULT_THRESHOLDS = '0,0.01,0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9'


def main(argv: list | None = None) -> None:
    parser = ToolArgumentParser(description='Score histogram and AP50 vs score threshold')
    add_source_args(parser)
    parser.add_argument('--iou-thr', type=probability, default=0.5)
    parser.add_argument('--thresholds', type=probabilities, default=DEFAULT_THRESHOLDS,
                        help='comma-separated score thresholds')
    args = parser.parse_args(argv)
    gt, results, out_dir = load_source(args)
    thresholds = args.thresholds
    sweep = analysis.score_threshold_sweep(gt, results, thresholds)
    matching = analysis.match_detections(gt, results, args.iou_thr)
    scores = np.array([r['score'] for r in results], np.float64)
    png = visualization.plot_score_histogram(scores, matching.det_matched, osp.join(out_dir, 'score_hist.png'),
                                        args.iou_thr, sweep)
    table = analysis.format_table(sweep)
    atomic_write_text(osp.join(out_dir, 'score_sweep.md'),
                      f'# contest AP50 vs score threshold\n\n{len(results)} detections, '
                      f'{int(matching.det_matched.sum())} matched at IoU {args.iou_thr:g}\n\n{table}\n')
    print(table)
    best = max(sweep, key=lambda r: r['ap50'])
    print(f'best AP50 {best["ap50"]:.4f} at score_thr {best["score_thr"]:g}; wrote {png} and score_sweep.md')


if __name__ == '__main__':
    main()
