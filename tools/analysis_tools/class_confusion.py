"""Which class loses points: per-class AP, PQ and classification F1, and the class confusion matrix of matched nuclei.

    python tools/analysis_tools/class_confusion.py CONFIG CHECKPOINT [--split val] [--score-thr 0.5]
    python tools/analysis_tools/class_confusion.py --results preds.json --gt gt_coco.json

Prints and writes under ``--out-dir`` (default ``work_dirs/<config>/analysis``):

- ``class_report.md``: the contest AP50 (class-aware, maxDets 100) and AP50 at maxDets 1000, bPQ, mPQ, HoVer-Net's
  detection F1 and type accuracy; per class: AP50 (maxDets 100 and 1000), AP, precision / recall at IoU 0.5
  (COCO matching, same class), PQ and HoVer-Net's F_c;
- ``class_confusion.png`` / ``class_confusion.md``: the confusion of GT and predicted nuclei paired by HoVer-Net's
  rule (centroids within ``--radius`` px, Hungarian), the unpaired ones in the last row / column.

PQ, F1 and the confusion describe the label image of the predictions scoring at least ``--score-thr`` (what
``mmcell segment`` writes); AP ranks every prediction. The same functions as ``CellPathologyMetric`` compute them.
"""
from __future__ import annotations

import os.path as osp

from mmcell import visualization
from mmcell.apis.predictions import add_source_args, load_source
from mmcell.evaluation.functional import coco as analysis
from mmcell.evaluation.functional.classification import CENTROID_RADIUS, confusion_rows
from mmcell.evaluation.functional.pathology import coco_figures
from mmcell.evaluation.metrics.cell_coco_metric import evaluate_submission
from mmcell.utils import ToolArgumentParser, exit_on_bad_input, probability
from mmcell.utils.fileio import atomic_write_text


def main(argv: list | None = None) -> None:
    parser = ToolArgumentParser(description='Per-class AP, PQ and F1, and the class confusion matrix')
    add_source_args(parser)
    parser.add_argument('--iou-thr', type=probability, default=0.5, help='IoU of a match for precision / recall')
    parser.add_argument('--score-thr', type=probability, default=0.5,
                        help='the label image (PQ, F1, confusion) keeps the detections scoring at least this')
    parser.add_argument('--radius', type=float, default=CENTROID_RADIUS,
                        help='centroid distance (px) of HoVer-Net\'s pairing (12 at 40x)')
    args = parser.parse_args(argv)
    gt, results, out_dir = load_source(args)
    classes = tuple(c['name'] for c in sorted(gt['categories'], key=lambda c: c['id']))
    ap = exit_on_bad_input(evaluate_submission, results, gt, classes, classwise=True)
    fig = exit_on_bad_input(coco_figures, gt, results, args.score_thr, len(classes), radius=args.radius)
    pr = {r['class']: r for r in analysis.per_class_precision_recall(gt, results, args.iou_thr, args.score_thr,
                                                                     classes)}
    overall = [dict(contest_AP50=ap['segm_mAP_50'], AP50_md1000=ap['segm_mAP_50_md1000'], bPQ=fig['pq'],
                    mPQ=fig.get('mpq', fig['pq']), F_d=fig['f1_d'], type_acc=fig.get('accuracy', float('nan')))]
    rows = []
    for k, name in enumerate(classes, start=1):
        rows.append({'class': name, 'gt': pr[name]['gt'], 'det': pr[name]['det'], 'AP50': ap[f'segm_{name}_AP50'],
                     'AP50 md1000': ap[f'segm_{name}_AP50_md1000'], 'AP': ap[f'segm_{name}_AP'],
                     'precision': pr[name]['precision'], 'recall': pr[name]['recall'],
                     'PQ': fig.get('class_pq', {}).get(k, fig['pq']),
                     'F_c': fig.get('f1_c', {}).get(k, fig['f1_d'])})
    title = f'nuclei paired within {args.radius:g} px (HoVer-Net), score >= {args.score_thr:g}'
    png, md = visualization.save_confusion(fig['confusion'], classes, out_dir, title)
    text = (f'# overall (AP: every prediction; the rest: score >= {args.score_thr:g})\n\n'
            f'{analysis.format_table(overall)}\n\n'
            f'# per class (precision / recall at IoU {args.iou_thr:g}, same class)\n\n{analysis.format_table(rows)}\n\n'
            f'# class confusion of {title}\n\n{analysis.format_table(confusion_rows(fig["confusion"], classes))}\n')
    atomic_write_text(osp.join(out_dir, 'class_report.md'), text)
    print(text)
    print(f'wrote {png}, {md} and {osp.join(out_dir, "class_report.md")}')


if __name__ == '__main__':
    main()
