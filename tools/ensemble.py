"""Fuse several models' predictions of a release folder into one Codabench submission.

    python tools/ensemble.py --models CFG1:CKPT1[:W1] CFG2:CKPT2[:W2] ... --data-root RELEASE_DIR --out results.zip

Every model predicts every test image (mmcell's fast CPU path, masks as RLE); per image, instances of the same
class whose boxes overlap by ``--iou-thr`` are fused: score-weighted boxes, a score that is the model-weighted
mean of each model's best score (voting), and masks by weighted pixel voting (``--vote-thr``). The result goes
through mmcell's submission writer (validated, atomic).
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
from mmcell.apis.ensemble import parse_model_spec, predict_release_ensemble  # noqa: E402


def parse_args(argv: list | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Ensemble several models into one submission')
    parser.add_argument('--models', nargs='+', required=True, help='CONFIG:CHECKPOINT[:WEIGHT] per model')
    parser.add_argument('--data-root', required=True, help='folder with test_release/ and the ids json')
    parser.add_argument('--out', default='results.zip', help='results.zip (Codabench) or a .json (bare list)')
    parser.add_argument('--ids', help='ids json (default DATA_ROOT/test_image_name_to_ids.json)')
    parser.add_argument('--img-dir', help='test images (default DATA_ROOT/test_release)')
    parser.add_argument('--iou-thr', type=float, default=0.55, help='box IoU that fuses instances')
    parser.add_argument('--vote-thr', type=float, default=0.5, help='share of weight a mask pixel needs')
    parser.add_argument('--max-per-img', type=int, default=1000)
    parser.add_argument('--score-thr', type=float, default=0.0, help='drop fused detections below this score')
    parser.add_argument('--tta', action='store_true', help='mask TTA (flips) for every model')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def main(argv: list | None = None) -> None:
    from mmcell.evaluation.submission import SubmissionOptions

    args = parse_args(argv)
    try:
        models = [parse_model_spec(s) for s in args.models]
        report = predict_release_ensemble(models, args.data_root, args.out, ids_file=args.ids, img_dir=args.img_dir,
                                          options=SubmissionOptions(score_thr=args.score_thr), device=args.device,
                                          iou_thr=args.iou_thr, vote_thr=args.vote_thr,
                                          max_per_img=args.max_per_img, tta=args.tta)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(str(err)) from None
    print(report.summary())
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
