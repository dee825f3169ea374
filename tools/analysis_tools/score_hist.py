"""Score histogram (matched vs unmatched at IoU 0.5) and contest-AP50 sweep over score thresholds.

    python tools/analysis_tools/score_hist.py CONFIG CHECKPOINT [--split val] [--out-dir DIR]
    python tools/analysis_tools/score_hist.py --results preds.json --gt gt_coco.json --out-dir DIR

Writes ``score_hist.png`` (histogram + sweep) and ``score_sweep.md`` under ``--out-dir`` (default
``work_dirs/<config>/analysis``) and prints the sweep table.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout
from mmcell.evaluation import analysis  # noqa: E402

DEFAULT_THRESHOLDS = '0,0.01,0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9'


def add_source_args(parser: argparse.ArgumentParser) -> None:
    """Predictions either from CONFIG + CHECKPOINT on a split, or from a results json with a GT json."""
    parser.add_argument('config', nargs='?', help='model config')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (.pth)')
    parser.add_argument('--split', default='val', choices=['val', 'test'], help='dataloader of the config to use')
    parser.add_argument('--max-images', type=int, help='only the first N images of the split')
    parser.add_argument('--results', help='predictions in the submission format (.json/.zip) instead of a model')
    parser.add_argument('--gt', help='COCO ground truth json (default: the split\'s own labels)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out-dir', help='where PNGs and tables go (default work_dirs/<config>/analysis)')


def load_source(args: argparse.Namespace) -> tuple:
    """(gt COCO dict, results list, out_dir) for the arguments of :func:`add_source_args`."""
    import json

    from mmcell.evaluation.submission import load_submission

    try:
        if args.results:
            if not args.gt:
                raise SystemExit('--results needs --gt (a COCO ground-truth json)')
            with open(args.gt) as fh:
                gt = json.load(fh)
            results = load_submission(args.results)
            out_dir = args.out_dir or osp.join(osp.dirname(osp.abspath(args.results)), 'analysis')
        else:
            if not (args.config and args.checkpoint):
                raise SystemExit('give CONFIG CHECKPOINT, or --results FILE --gt FILE')
            from mmcell.apis.inference import init_cell_model, predict_split

            model = init_cell_model(args.config, args.checkpoint, device=args.device)
            pred = predict_split(model, args.split, max_images=args.max_images, gt_file=args.gt)
            if pred.gt is None:
                raise SystemExit(f'{args.config}: the {args.split} split has no labels; pass --gt')
            gt, results = pred.gt, pred.results
            out_dir = args.out_dir or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0], 'analysis')
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(str(err)) from None
    return gt, results, out_dir


def main(argv: list | None = None) -> None:
    parser = argparse.ArgumentParser(description='Score histogram and AP50 vs score threshold')
    add_source_args(parser)
    parser.add_argument('--iou-thr', type=float, default=0.5)
    parser.add_argument('--thresholds', default=DEFAULT_THRESHOLDS, help='comma-separated score thresholds')
    args = parser.parse_args(argv)
    gt, results, out_dir = load_source(args)
    thresholds = [float(t) for t in args.thresholds.split(',')]
    sweep = analysis.score_threshold_sweep(gt, results, thresholds)
    matching = analysis.match_detections(gt, results, args.iou_thr)
    scores = np.array([r['score'] for r in results], np.float64)
    png = analysis.plot_score_histogram(scores, matching.det_matched, osp.join(out_dir, 'score_hist.png'),
                                        args.iou_thr, sweep)
    table = analysis.format_table(sweep)
    with open(osp.join(out_dir, 'score_sweep.md'), 'w') as fh:
        fh.write(f'# contest AP50 vs score threshold\n\n{len(results)} detections, '
                 f'{int(matching.det_matched.sum())} matched at IoU {args.iou_thr:g}\n\n{table}\n')
    print(table)
    best = max(sweep, key=lambda r: r['ap50'])
    print(f'best AP50 {best["ap50"]:.4f} at score_thr {best["score_thr"]:g}; wrote {png} and score_sweep.md')


if __name__ == '__main__':
    main()
