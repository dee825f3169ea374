"""Predict a release folder and write the Codabench submission in one command.

    python tools/predict.py CONFIG CHECKPOINT --data-root RELEASE_DIR --out results.zip

``RELEASE_DIR`` holds ``test_release/*.tif`` and ``test_image_name_to_ids.json``. ``--out`` ending in ``.zip``
writes a zip holding ``test-results.json``; ``.json`` writes the bare list. The file is validated before it
replaces an existing one. The model comes from mmcell's one builder (``mmcell.apis.init_cell_model``): fast
CPU modules by default (``--no-fast``: mmdet's own), ``--tta`` / ``--tile`` wrap it as ``tools/test.py`` does.
"""
from __future__ import annotations

import argparse

from mmengine.config import DictAction

from mmcell.apis.builder import add_model_args, model_kwargs_of
from mmcell.apis.release import predict_submission
from mmcell.evaluation.submission import add_submission_args, submission_options_of
from mmcell.utils import ToolArgumentParser, exit_on_bad_input, probability


def parse_args(argv: list | None = None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Write a contest submission for a release folder')
    parser.add_argument('config', help='model config')
    parser.add_argument('checkpoint', help='checkpoint (.pth)')
    parser.add_argument('--data-root', required=True, help='folder with test_release/ and the ids json')
    parser.add_argument('--out', default='results.zip', help='results.zip (Codabench) or a .json (bare list)')
    parser.add_argument('--ids', help='ids json (default DATA_ROOT/test_image_name_to_ids.json)')
    parser.add_argument('--img-dir', help='test images (default DATA_ROOT/test_release)')
    add_submission_args(parser)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    add_model_args(parser)
    parser.add_argument('--models', nargs='+', metavar='CFG:CKPT[:W]',
                        help='more models (CONFIG:CHECKPOINT[:WEIGHT]): fuse CONFIG CHECKPOINT and these into one '
                             'submission (weighted box fusion + mask voting)')
    parser.add_argument('--iou-thr', type=probability, default=0.55, help='with --models: box IoU that fuses instances')
    parser.add_argument('--vote-thr', type=probability, default=0.5,
                        help='with --models: share of the model weight a mask pixel needs')
    parser.add_argument('--save-labels', metavar='DIR',
                        help='also write per image a label TIFF, a class map TIFF and a cell table CSV')
    parser.add_argument('--labels-score-thr', type=probability,
                        help='score threshold of --save-labels (default 0.5: label images are read by people)')
    return parser.parse_args(argv)


def main(argv: list | None = None) -> None:
    args = parse_args(argv)
    report = exit_on_bad_input(predict_submission, args.config, args.checkpoint, args.data_root, args.out,
                                ids_file=args.ids, img_dir=args.img_dir, options=submission_options_of(args),
                                batch_size=args.batch_size, cfg_options=args.cfg_options,
                                extra_models=args.models or (), save_labels=args.save_labels,
                                labels_score_thr=args.labels_score_thr, fuse_iou_thr=args.iou_thr,
                                vote_thr=args.vote_thr, **model_kwargs_of(args))
    print(report.summary())
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
