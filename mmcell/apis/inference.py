"""Small inference API shared by ``tools/predict.py``, the analysis tools and users.

Predictions come back as mmdet ``DetDataSample`` objects in **original image pixels**: the test pipeline may
upscale or pad an image for the model, and mmdet's detectors rescale boxes and paste masks back at ``ori_shape``;
:func:`predict_images` checks that every mask has the size of the image file.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict

ConfigType = Union[str, os.PathLike, Config]


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the model of the config: ``"<checkpoint>: <problem>"``."""


def _num_classes_of(cfg: Config) -> Optional[int]:
    try:
        return int(cfg.model.roi_head.bbox_head.num_classes)
    except (AttributeError, KeyError, TypeError):
        return None


def _check_shapes(model: torch.nn.Module, state_dict: dict, checkpoint: str, config: str,
                  num_classes: Optional[int]) -> None:
    """Refuse a checkpoint whose tensors do not fit the model (mmengine would only warn and keep random weights)."""
    own = model.state_dict()
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
                  if k in own and hasattr(v, 'shape') and tuple(v.shape) != tuple(own[k].shape)]
    if not mismatched:
        return
    for key, ckpt_shape, model_shape in mismatched:
        if key.endswith('fc_cls.weight'):  # Shared2FCBBoxHead: num_classes + 1 outputs (background)
            raise CheckpointMismatchError(
                f'{checkpoint}: trained for {ckpt_shape[0] - 1} classes but {config} has num_classes='
                f'{num_classes if num_classes is not None else model_shape[0] - 1}')
    key, ckpt_shape, model_shape = mismatched[0]
    raise CheckpointMismatchError(f'{checkpoint}: {key} has shape {ckpt_shape} but the model of {config} expects '
                                  f'{model_shape} ({len(mismatched)} mismatched tensor(s))')


def init_cell_model(config: ConfigType, checkpoint: Optional[str] = None, device: str = 'cpu',
                    cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build the detector of an mmcell config and load a checkpoint into it.

    Args:
        config: config file or ``Config``.
        checkpoint: ``.pth`` file (None keeps the initial weights; pretrained backbones are not fetched).
        device: e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options: overrides merged into the config (``--cfg-options`` style dict).

    Returns:
        the model in eval mode, with ``.cfg`` and ``.dataset_meta`` set.

    Raises:
        FileNotFoundError: config or checkpoint missing.
        CheckpointMismatchError: the checkpoint was trained for another number of classes (or model).
    """
    from mmdet.registry import DATASETS, MODELS

    from mmcell.utils import load_config, register_all_modules

    register_all_modules()
    config_name = str(config.filename if isinstance(config, Config) else config)
    cfg = load_config(config, cfg_options)
    # Inference never needs ImageNet weights (the checkpoint replaces them) and must work offline.
    cfg.model.setdefault('backbone', {})['init_cfg'] = None
    cfg.model.pop('pretrained', None)
    model = MODELS.build(cfg.model)
    model.cfg = cfg

    dataset_meta = None
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'{checkpoint}: checkpoint file not found')
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
        state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
        state_dict = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}
        _check_shapes(model, state_dict, checkpoint, config_name, _num_classes_of(cfg))
        load_state_dict(model, state_dict, strict=False)
        dataset_meta = (ckpt.get('meta') or {}).get('dataset_meta') if isinstance(ckpt, dict) else None
    if dataset_meta is None:
        ds_cfg = cfg.get('test_dataloader', {}).get('dataset', {})
        ds_type = DATASETS.get(ds_cfg.get('type', '')) if isinstance(ds_cfg.get('type'), str) else None
        dataset_meta = dict(getattr(ds_type, 'METAINFO', {}) or {})
    num_classes = _num_classes_of(cfg)
    classes = tuple(dataset_meta.get('classes', ()))
    if num_classes is not None and classes and len(classes) != num_classes:
        raise CheckpointMismatchError(f'{checkpoint or config_name}: {len(classes)} classes {classes} but '
                                      f'{config_name} has num_classes={num_classes}')
    model.dataset_meta = dataset_meta
    model.to(device)
    model.eval()
    return model


def build_test_pipeline(cfg: Config) -> Compose:
    """The test pipeline of a config (``test_dataloader.dataset.pipeline``, else ``test_pipeline``)."""
    ds_cfg = cfg.get('test_dataloader', {}).get('dataset', {})
    pipeline = ds_cfg.get('pipeline') or cfg.get('test_pipeline')
    if not pipeline:
        raise ValueError(f'{cfg.filename}: no test pipeline (test_dataloader.dataset.pipeline or test_pipeline)')
    return Compose(copy.deepcopy(pipeline))


def _check_original_size(sample: Any, path: str, expected: Optional[tuple]) -> None:
    height, width = (int(v) for v in sample.ori_shape[:2])
    if expected is not None and (height, width) != tuple(expected):
        raise ValueError(f'{path}: the pipeline loaded it as {height}x{width} but it is '
                         f'{expected[0]}x{expected[1]}')
    masks = sample.pred_instances.get('masks', None)
    if masks is None or not len(masks):
        return
    # dense (N, H, W) masks, or a list of RLE dicts (mmcell's fast inference with mask_format='rle')
    size = tuple(masks[0]['size']) if isinstance(masks, (list, tuple)) else tuple(masks.shape[-2:])
    if size != (height, width):
        raise ValueError(f'{path}: predicted masks are {size}, not the original {height}x{width}; '
                         'the model must rescale its predictions (test_step with rescale=True)')


@torch.no_grad()
def predict_images(model: torch.nn.Module, image_paths: Sequence[str], batch_size: int = 1,
                   img_ids: Optional[Sequence[int]] = None, sizes: Optional[Sequence[tuple]] = None,
                   border_margin: Optional[float] = None, progress: bool = True) -> list:
    """Run the model on image files through the config's test pipeline.

    Args:
        model: from :func:`init_cell_model`.
        image_paths: image files (TIFF or anything the test pipeline loads).
        batch_size: images per forward pass.
        img_ids: ids stored in the samples (``img_id``); default 0..N-1.
        sizes: expected (H, W) of each image (e.g. from the ids json); a different loaded size is an error.
        border_margin: if not None, drop instances whose box is within this many px of the image border
            (same rule as :class:`mmcell.engine.hooks.BorderFilterHook`).
        progress: show a progress bar.

    Returns:
        one ``DetDataSample`` per image; ``pred_instances`` (bboxes, labels, scores, masks) in original pixels.
    """
    from mmengine.utils import ProgressBar

    from mmcell.engine.hooks.border_filter import filter_border_instances

    pipeline = build_test_pipeline(model.cfg)
    img_ids = list(range(len(image_paths))) if img_ids is None else list(img_ids)
    bar = ProgressBar(len(image_paths)) if progress and len(image_paths) else None
    samples = []
    for start in range(0, len(image_paths), batch_size):
        paths = [str(p) for p in image_paths[start:start + batch_size]]
        batch = [pipeline(dict(img_path=p, img_id=int(i))) for p, i in zip(paths, img_ids[start:start + batch_size])]
        outputs = model.test_step(pseudo_collate(batch))
        for k, (path, out) in enumerate(zip(paths, outputs)):
            out = out.cpu()
            _check_original_size(out, path, None if sizes is None else sizes[start + k])
            if border_margin is not None:
                filter_border_instances(out, border_margin)
            samples.append(out)
            if bar is not None:
                bar.update()
    if bar is not None:
        print()
    return samples


def masks_to_numpy(sample: Any) -> np.ndarray:
    """(N, H, W) bool masks of a prediction (tensor or mmdet BitmapMasks) as numpy."""
    masks = sample.pred_instances.masks
    if isinstance(masks, (list, tuple)):  # RLE dicts
        import pycocotools.mask as mask_utils

        h, w = sample.ori_shape[:2]
        return np.stack([mask_utils.decode(m) for m in masks]).astype(bool) if masks else np.zeros((0, h, w), bool)
    if hasattr(masks, 'to_ndarray'):
        return masks.to_ndarray().astype(bool)
    return masks.detach().cpu().numpy().astype(bool)


def predict_release(model: torch.nn.Module, data_root: str, out_file: str, ids_file: Optional[str] = None,
                    img_dir: Optional[str] = None, options: Any = None, batch_size: int = 1,
                    progress: bool = True) -> Any:
    """Predict every image of a release folder and write the submission (``.zip`` or bare ``.json``).

    Args:
        model: from :func:`init_cell_model`.
        data_root: folder with ``test_release/`` and ``test_image_name_to_ids.json``.
        out_file: ``results.zip`` (holding ``test-results.json``) or ``*.json`` (the bare list).
        ids_file: the ids json (default ``data_root/test_image_name_to_ids.json``).
        img_dir: the test images (default ``data_root/test_release``).
        options: :class:`mmcell.evaluation.submission.SubmissionOptions`.
        batch_size: images per forward pass.
        progress: show a progress bar.

    Returns:
        the :class:`mmcell.evaluation.submission.SubmissionReport` of the written file.

    Raises:
        HW3FormatError: missing ids json, a test image the json does not list, an empty test folder.
        SubmissionError: an output path that cannot be written (checked before inference), a format problem.
    """
    from mmcell.evaluation.submission import SubmissionOptions, encode_data_sample, write_submission

    options = options or SubmissionOptions()
    images, paths = release_images(data_root, out_file, ids_file, img_dir)
    samples = predict_images(model, paths, batch_size,
                             img_ids=[img['id'] for img in images],
                             sizes=[(img['height'], img['width']) for img in images], progress=progress)
    num_classes = len(model.dataset_meta.get('classes', ())) or 4
    results = []
    for img, sample in zip(images, samples):
        results += encode_data_sample(sample, img['id'], options, num_classes,
                                      expected_size=(img['height'], img['width']))
    return write_submission(results, out_file, images, num_classes=num_classes)


def release_images(data_root: str, out_file: str, ids_file: Optional[str] = None,
                   img_dir: Optional[str] = None) -> tuple:
    """The test images of a release folder (ids json entries and their paths), checked before any inference.

    Raises:
        HW3FormatError: missing ids json, a test image the json does not list, an empty test folder.
        SubmissionError: ``out_file`` cannot be written.
    """
    from mmcell.datasets.hw3_format import HW3FormatError, read_test_ids

    ids_file = ids_file or osp.join(data_root, 'test_image_name_to_ids.json')
    img_dir = img_dir or osp.join(data_root, 'test_release')
    images = read_test_ids(ids_file, img_dir)
    if not images:
        raise HW3FormatError(img_dir, f'no test images (and {osp.basename(ids_file)} lists none)')
    check_writable(out_file)
    return images, [osp.join(img_dir, img['file_name']) for img in images]


def check_writable(out_file: str) -> None:
    """Fail before a long inference when ``out_file`` cannot be written (one line, ``SubmissionError``)."""
    from mmcell.evaluation.submission import SubmissionError

    if not str(out_file).endswith(('.zip', '.json')):
        raise SubmissionError(f'{out_file}: a submission must end with .zip (Codabench) or .json')
    folder = osp.dirname(osp.abspath(out_file))
    existing = folder
    while not osp.isdir(existing):
        existing = osp.dirname(existing)
    if osp.isdir(out_file):
        raise SubmissionError(f'{out_file}: is a folder')
    if not os.access(existing, os.W_OK | os.X_OK) or (osp.exists(out_file) and not os.access(folder, os.W_OK)):
        raise SubmissionError(f'{out_file}: cannot write here (no write permission on {existing})')


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
    import json

    from mmdet.registry import DATASETS

    from mmcell.evaluation.analysis import coco_gt_from_data_infos
    from mmcell.evaluation.submission import SubmissionOptions, encode_data_sample

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
        gt = coco_gt_from_data_infos(infos, classes)
    samples = predict_images(model, [info['img_path'] for info in infos],
                             img_ids=[int(info['img_id']) for info in infos],
                             sizes=[(int(info['height']), int(info['width'])) for info in infos], progress=progress)
    options = options or SubmissionOptions()
    results = [r for s in samples for r in encode_data_sample(s, options=options, num_classes=len(classes) or 4)]
    return SplitPredictions(infos, samples, results, gt, classes)
