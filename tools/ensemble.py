"""Fuse several models' predictions of a release folder into one Codabench submission.

    python tools/ensemble.py --models CFG1:CKPT1[:W1] CFG2:CKPT2[:W2] ... --data-root RELEASE_DIR --out results.zip

Every model comes from mmcell's one builder (fast CPU modules by default, masks as RLE) and predicts every test
image; per image, instances of the same class whose boxes overlap by ``--iou-thr`` are fused: score-weighted
boxes, a score that is the model-weighted mean of each model's best score (voting), and masks by weighted pixel
voting (``--vote-thr``). The result goes through mmcell's submission writer (validated, atomic).
"""
from __future__ import annotations

import argparse

from mmcell.apis.ensemble import predict_release_ensemble
from mmcell.apis.inference import add_model_args, model_kwargs_of
from mmcell.evaluation.submission import add_submission_args, submission_options_of
from mmcell.utils import ToolArgumentParser, exit_on_bad_input


def parse_args(argv: list | None = None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Ensemble several models into one submission')
    parser.add_argument('--models', nargs='+', required=True, help='CONFIG:CHECKPOINT[:WEIGHT] per model')
    parser.add_argument('--data-root', required=True, help='folder with test_release/ and the ids json')
    parser.add_argument('--out', default='results.zip', help='results.zip (Codabench) or a .json (bare list)')
    parser.add_argument('--ids', help='ids json (default DATA_ROOT/test_image_name_to_ids.json)')
    parser.add_argument('--img-dir', help='test images (default DATA_ROOT/test_release)')
    parser.add_argument('--iou-thr', type=float, default=0.55, help='box IoU that fuses instances')
    parser.add_argument('--vote-thr', type=float, default=0.5, help='share of weight a mask pixel needs')
    add_submission_args(parser)
    add_model_args(parser)
    return parser.parse_args(argv)


def main(argv: list | None = None) -> None:
    args = parse_args(argv)
    report = exit_on_bad_input(predict_release_ensemble, args.models, args.data_root, args.out, ids_file=args.ids,
                               img_dir=args.img_dir, options=submission_options_of(args), iou_thr=args.iou_thr,
                               vote_thr=args.vote_thr, **model_kwargs_of(args))
    print(report.summary())
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
