"""Side-by-side original | GT | prediction overlays (contours coloured by class) for val or test images.

    python tools/analysis_tools/visualize_predictions.py CONFIG CHECKPOINT [--split val] [--num 8]
        [--score-thr 0.3] [--show-scores] [--out-dir DIR]

One PNG per image under ``--out-dir`` (default ``work_dirs/<config>/analysis/vis_<split>``). Test images of the
real contest have no labels: their GT panel stays empty.
"""
from __future__ import annotations

import os.path as osp

import numpy as np

from mmcell import visualization
from mmcell.structures.rle import rle_bytes
from mmcell.utils import ToolArgumentParser, exit_on_bad_input, probability
from mmcell.utils.fileio import atomic_write, check_output_path


def main(argv: list | None = None) -> None:
    parser = ToolArgumentParser(description='original | GT | prediction overlays')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--split', default='val', choices=['val', 'test'])
    parser.add_argument('--num', type=int, default=8, help='number of images')
    parser.add_argument('--score-thr', type=probability, default=0.3, help='draw predictions scoring at least this')
    parser.add_argument('--show-scores', action='store_true', help='write each prediction\'s score')
    parser.add_argument('--gt', help='COCO ground truth json (default: the split\'s own labels)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load a checkpoint that weights_only refuses (it can run code: only files you trust)')
    parser.add_argument('--out-dir')
    args = parser.parse_args(argv)

    import mmcv
    import pycocotools.mask as mask_utils

    from mmcell.apis.builder import init_cell_model
    from mmcell.apis.predictions import predict_split
    from mmcell.datasets.image_io import read_image
    from mmcell.structures.rle import masks_to_bool

    out_dir = args.out_dir or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0], 'analysis',
                                       f'vis_{args.split}')
    exit_on_bad_input(check_output_path, out_dir, is_dir=True)
    model = exit_on_bad_input(init_cell_model, args.config, args.checkpoint, device=args.device,
                              trust_checkpoint=args.trust_checkpoint)
    pred = exit_on_bad_input(predict_split, model, args.split, max_images=args.num, gt_file=args.gt)
    palette = model.dataset_meta.get('palette')
    for info, sample in zip(pred.infos, pred.samples):
        h, w = int(info['height']), int(info['width'])
        anns = [a for a in (pred.gt or {}).get('annotations', []) if a['image_id'] == int(info['img_id'])]
        gt_masks = np.stack([mask_utils.decode(rle_bytes(a['segmentation'])) for a in anns]).astype(bool) \
            if anns else np.zeros((0, h, w), bool)
        keep = (sample.pred_instances.scores >= args.score_thr).numpy()
        canvas = visualization.render_comparison(
            read_image(info['img_path']), gt_masks, [a['category_id'] - 1 for a in anns],
            masks_to_bool(sample.pred_instances.masks, h, w)[keep], sample.pred_instances.labels.numpy()[keep],
            sample.pred_instances.scores.numpy()[keep], pred.classes, palette, args.show_scores)
        out = osp.join(out_dir, osp.splitext(osp.basename(info['img_path']))[0] + '.png')
        if osp.basename(info['img_path']) == 'image.tif':  # train/<uuid>/image.tif: name it by its folder
            out = osp.join(out_dir, osp.basename(osp.dirname(info['img_path'])) + '.png')
        atomic_write(out, lambda tmp, canvas=canvas: mmcv.imwrite(canvas[..., ::-1], tmp))
    print(f'wrote {len(pred.infos)} overlays to {out_dir}')


if __name__ == '__main__':
    main()
