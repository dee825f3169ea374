"""Per-class precision/recall at IoU 0.5 and the class confusion matrix of matched nuclei.

    python tools/analysis_tools/class_confusion.py CONFIG CHECKPOINT [--split val] [--score-thr 0.5]
    python tools/analysis_tools/class_confusion.py --results preds.json --gt gt_coco.json

Writes ``class_confusion.png`` and ``class_pr.md`` under ``--out-dir`` (default ``work_dirs/<config>/analysis``).
"""
from __future__ import annotations

import os.path as osp

from mmcell import visualization
from mmcell.apis.predictions import add_source_args, load_source
from mmcell.evaluation.functional import coco as analysis
from mmcell.utils import ToolArgumentParser, probability
from mmcell.utils.fileio import atomic_write_text


def main(argv: list | None = None) -> None:
    parser = ToolArgumentParser(description='Per-class precision/recall and class confusion matrix')
    add_source_args(parser)
    parser.add_argument('--iou-thr', type=probability, default=0.5)
    parser.add_argument('--score-thr', type=probability, default=0.5, help='detections below this score are ignored')
    args = parser.parse_args(argv)
    gt, results, out_dir = load_source(args)
    classes = tuple(c['name'] for c in sorted(gt['categories'], key=lambda c: c['id']))
    rows = analysis.per_class_precision_recall(gt, results, args.iou_thr, args.score_thr, classes)
    conf = analysis.class_confusion(gt, results, args.iou_thr, args.score_thr, len(classes))
    png = visualization.plot_confusion(conf, classes, osp.join(out_dir, 'class_confusion.png'))
    header = ['gt \\ pred'] + list(classes) + ['(missed)']
    conf_rows = [dict(zip(header, [name] + row.tolist())) for name, row in zip(list(classes) + ['(false pos.)'], conf)]
    text = (f'# per class at IoU {args.iou_thr:g}, score >= {args.score_thr:g}\n\n{analysis.format_table(rows)}\n\n'
            f'# class confusion of matched instances (class-agnostic matching)\n\n{analysis.format_table(conf_rows)}\n')
    atomic_write_text(osp.join(out_dir, 'class_pr.md'), text)
    print(text)
    print(f'wrote {png} and class_pr.md')


if __name__ == '__main__':
    main()
