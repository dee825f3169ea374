"""Predictions of a labelled split (or a saved submission) with their ground truth, for the analysis tools.

``tools/analysis_tools/score_hist.py``, ``class_confusion.py`` and ``visualize_predictions.py`` take their
predictions from here: a model from the one builder (:func:`mmcell.apis.builder.init_cell_model`) run on a
config's val/test split, or a submission file scored against a COCO ground-truth json.
"""
from __future__ import annotations

import argparse
import copy
import json
import os.path as osp
from typing import Any, Optional

import torch
from mmdet.registry import DATASETS

from mmcell.apis.builder import init_cell_model
from mmcell.apis.predict import predict_images
from mmcell.datasets.coco_gt import coco_ground_truth
from mmcell.datasets.metainfo import num_classes_of
from mmcell.evaluation.submission import SubmissionOptions, encode_data_sample, load_submission
from mmcell.utils import one_line


class SplitPredictions:
    """Predictions of one data split with its ground truth, for the analysis tools.

    Attributes:
        infos: dataset entries (``img_path``, ``img_id``, ``height``, ``width``, ``instances``).
        samples: ``DetDataSample`` predictions in original pixels, one per entry.
        results: the same predictions in the submission format.
        gt: COCO ground-truth dict (None when the split has no labels).
        classes: class names.
    """

    def __init__(self, infos: list, samples: list, results: list, gt: Optional[dict], classes: tuple) -> None:
        self.infos, self.samples, self.results, self.gt, self.classes = infos, samples, results, gt, classes


def predict_split(model: torch.nn.Module, split: str = 'val', max_images: Optional[int] = None,
                  gt_file: Optional[str] = None, options: Any = None, progress: bool = True) -> SplitPredictions:
    """Predict the images of ``{split}_dataloader.dataset`` of the model's config.

    Args:
        model: from :func:`init_cell_model`.
        split: ``'val'`` or ``'test'`` (the config's dataloader of that name).
        max_images: only the first N images.
        gt_file: COCO ground truth; default: the dataset's own instances, or for an unlabelled test split
            ``data_root/test_gt_coco.json`` when it exists (synthetic data).
        options: :class:`mmcell.evaluation.submission.SubmissionOptions` for the result list.
        progress: show a progress bar.
    """



    ds_cfg = copy.deepcopy(model.cfg.get(f'{split}_dataloader', {}).get('dataset'))
    if not ds_cfg:
        raise ValueError(f'{model.cfg.filename}: no {split}_dataloader.dataset')
    ds_cfg['pipeline'] = []
    dataset = DATASETS.build(ds_cfg)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))][:max_images]
    classes = tuple(model.dataset_meta.get('classes', ()))
    gt = None
    if gt_file is None and infos and not any(info.get('instances') for info in infos):
        candidate = osp.join(ds_cfg.get('data_root', ''), 'test_gt_coco.json')
        gt_file = candidate if split == 'test' and osp.isfile(candidate) else None
    if gt_file is not None:
        with open(gt_file) as fh:
            gt = json.load(fh)
        keep = {int(info['img_id']) for info in infos}
        gt = dict(gt, images=[i for i in gt['images'] if i['id'] in keep],
                  annotations=[a for a in gt['annotations'] if a['image_id'] in keep])
    elif any(info.get('instances') for info in infos):
        gt = coco_ground_truth(infos, classes)
    samples = predict_images(model, [info['img_path'] for info in infos],
                             img_ids=[int(info['img_id']) for info in infos],
                             sizes=[(int(info['height']), int(info['width'])) for info in infos], progress=progress)
    options = options or SubmissionOptions()
    num_classes = num_classes_of(model.dataset_meta)
    results = [r for s in samples for r in encode_data_sample(s, options=options, num_classes=num_classes)]
    return SplitPredictions(infos, samples, results, gt, classes)


def add_source_args(parser: argparse.ArgumentParser) -> None:
    """Predictions either from CONFIG + CHECKPOINT on a split, or from a results json with a GT json."""
    parser.add_argument('config', nargs='?', help='model config')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (.pth)')
    parser.add_argument('--split', default='val', choices=['val', 'test'], help='dataloader of the config to use')
    parser.add_argument('--max-images', type=int, help='only the first N images of the split')
    parser.add_argument('--results', help='predictions in the submission format (.json/.zip) instead of a model')
    parser.add_argument('--gt', help='COCO ground truth json (default: the split\'s own labels)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load a checkpoint that weights_only refuses (it can run code: only files you trust)')
    parser.add_argument('--out-dir', help='where PNGs and tables go (default work_dirs/<config>/analysis)')


def load_source(args: argparse.Namespace) -> tuple:
    """(gt COCO dict, results list, out_dir) for the arguments of :func:`add_source_args`."""


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

            model = init_cell_model(args.config, args.checkpoint, device=args.device,
                                    trust_checkpoint=args.trust_checkpoint)
            pred = predict_split(model, args.split, max_images=args.max_images, gt_file=args.gt)
            if pred.gt is None:
                raise SystemExit(f'{args.config}: the {args.split} split has no labels; pass --gt')
            gt, results = pred.gt, pred.results
            out_dir = args.out_dir or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0], 'analysis')
    except (ValueError, OSError) as err:
        raise SystemExit(one_line(err)) from None
    return gt, results, out_dir
