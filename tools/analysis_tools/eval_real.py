"""AP of a trained model on every image of an HW3-layout data root (e.g. real tissue in the HW3 layout).

    python tools/analysis_tools/eval_real.py CONFIG CHECKPOINT DATA_ROOT [--class-agnostic]
        [--cfg-options KEY=VALUE ...] [--work-dir DIR]

Prints segm AP50 and AP at maxDets 1000 (the honest figure on dense tissue), the contest AP50 (maxDets 100) and
the bbox figures. The config's ``model.test_cfg`` is used as it is (a warning says when it caps detections below
1,000 per image; raise it with ``--cfg-options model.test_cfg.rcnn.max_per_img=1000``).
Example, the synthetic demo model on real MoNuSeg tiles::

    python tools/analysis_tools/eval_real.py work_dirs/demo/mask-rcnn_r18-tiny_fpn_1xb2-cpu_synthetic.py \\
        work_dirs/demo/best_coco_segm_mAP_50_epoch_16.pth data/monuseg --class-agnostic
"""
from __future__ import annotations

import argparse

from mmengine.config import DictAction

from mmcell.utils.errors import ToolArgumentParser, exit_on_bad_input

FIGURES = (('segm_mAP_50_md1000', 'segm AP50 (maxDets 1000)'), ('segm_mAP_md1000', 'segm AP (maxDets 1000)'),
           ('segm_mAP_50', 'segm AP50, contest (maxDets 100)'), ('bbox_mAP_50_md1000', 'bbox AP50 (maxDets 1000)'),
           ('bbox_mAP_md1000', 'bbox AP (maxDets 1000)'))


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='AP50 / AP (maxDets 1000) of a model on an HW3-layout data root')
    parser.add_argument('config', help='the model config (e.g. the one dumped next to the checkpoint)')
    parser.add_argument('checkpoint', help='the .pth file')
    parser.add_argument('data_root', help='HW3-layout folder holding train/<name>/image.tif + class<K>.tif')
    parser.add_argument('--class-agnostic', action='store_true',
                        help='score every prediction and GT instance as one class (nucleus)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    parser.add_argument('--work-dir', help='keep the Runner log here (default: a temporary folder)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load a checkpoint that weights_only refuses (it can run code: only files you trust)')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from mmcell.apis.evaluate import evaluate_data_root

    metrics = exit_on_bad_input(evaluate_data_root, args.config, args.checkpoint, args.data_root,
                                class_agnostic=args.class_agnostic, cfg_options=args.cfg_options,
                                work_dir=args.work_dir, trust_checkpoint=args.trust_checkpoint)
    scope = 'class-agnostic' if args.class_agnostic else 'per class, averaged'
    print(f'\n=== {args.checkpoint} on {args.data_root} ({scope}) ===')
    for key, label in FIGURES:
        print(f'{label:34s} {metrics[key]:.3f}' if key in metrics else f'{label:34s} -')


if __name__ == '__main__':
    main()
