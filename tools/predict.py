"""Predict a release folder and write the Codabench submission in one command.

    python tools/predict.py CONFIG CHECKPOINT --data-root RELEASE_DIR --out results.zip

``RELEASE_DIR`` holds ``test_release/*.tif`` and ``test_image_name_to_ids.json``. ``--out`` ending in ``.zip``
writes a zip holding ``test-results.json``; ``.json`` writes the bare list. The file is validated before it
replaces an existing one.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
from mmcell.apis.inference import init_cell_model, predict_release  # noqa: E402
from mmcell.evaluation.submission import SubmissionOptions  # noqa: E402


def parse_args(argv: list | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Write a contest submission for a release folder')
    parser.add_argument('config', help='model config')
    parser.add_argument('checkpoint', help='checkpoint (.pth)')
    parser.add_argument('--data-root', required=True, help='folder with test_release/ and the ids json')
    parser.add_argument('--out', default='results.zip', help='results.zip (Codabench) or a .json (bare list)')
    parser.add_argument('--ids', help='ids json (default DATA_ROOT/test_image_name_to_ids.json)')
    parser.add_argument('--img-dir', help='test images (default DATA_ROOT/test_release)')
    parser.add_argument('--score-thr', type=float, default=0.0, help='drop detections below this score')
    parser.add_argument('--mask-thr', type=float, default=0.5, help='threshold of soft masks')
    parser.add_argument('--max-per-img', type=int, help='keep at most this many detections per image')
    parser.add_argument('--border-margin', type=float,
                        help='drop detections whose box is within this many px of the image border')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', default='cpu', help="e.g. cpu or cuda:0")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    # mask TTA, tiled inference, ensembles and label images (mmcell.models / mmcell.apis.segment, issue 6)
    parser.add_argument('--tta', action='store_true', help='mask TTA: flips (+ --tta-scales) fused per image')
    parser.add_argument('--tta-scales', type=float, nargs='+', default=[1.0], help='TTA scale multipliers')
    parser.add_argument('--tile', type=int, help='tiled inference with this tile size (network-input pixels)')
    parser.add_argument('--models', nargs='+', metavar='CFG:CKPT[:W]',
                        help='more models: fuse CONFIG CHECKPOINT and these into one submission (tools/ensemble.py)')
    parser.add_argument('--save-labels', metavar='DIR',
                        help='also write per image a label TIFF, a class map TIFF and a cell table CSV')
    parser.add_argument('--labels-score-thr', type=float, default=0.5, help='score threshold of --save-labels')
    return parser.parse_args(argv)


def main(argv: list | None = None) -> None:
    args = parse_args(argv)
    options = SubmissionOptions(score_thr=args.score_thr, mask_thr=args.mask_thr, max_per_img=args.max_per_img,
                                border_margin=args.border_margin)
    try:
        if args.models:
            from mmcell.apis.ensemble import parse_model_spec, predict_release_ensemble

            models = [(args.config, args.checkpoint, 1.0)] + [parse_model_spec(s) for s in args.models]
            report = predict_release_ensemble(models, args.data_root, args.out, ids_file=args.ids,
                                              img_dir=args.img_dir, options=options, device=args.device,
                                              tta=args.tta)
            print(report.summary())
            print(f'wrote {args.out}')
            return
        if args.tta or args.tile:
            from mmcell.apis.segment import build_inference_model

            model = build_inference_model(args.config, args.checkpoint, device=args.device,
                                          cfg_options=args.cfg_options, tta=args.tta, tta_scales=args.tta_scales,
                                          tile=args.tile)
        else:
            model = init_cell_model(args.config, args.checkpoint, device=args.device, cfg_options=args.cfg_options)
        if args.save_labels:
            from mmcell.apis.segment import LabelSaver

            model = LabelSaver(model, args.save_labels, args.labels_score_thr)
        report = predict_release(model, args.data_root, args.out, ids_file=args.ids, img_dir=args.img_dir,
                                 options=options, batch_size=args.batch_size)
    except (ValueError, FileNotFoundError) as err:  # HW3FormatError, SubmissionError, CheckpointMismatchError
        raise SystemExit(str(err)) from None
    print(report.summary())
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
