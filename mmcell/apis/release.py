"""The contest workflow: a release folder (``test_release/`` + ``test_image_name_to_ids.json``) in, a Codabench
submission out, from one model (:func:`predict_release`) or an ensemble of models fused per image
(:func:`predict_release_ensemble`); :func:`predict_submission` is ``tools/predict.py`` in one call.

Every input and the output path are checked (:func:`release_images`) before a model is built.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, List, Optional, Sequence, Tuple

import torch
from mmengine.utils import ProgressBar

from mmcell.datasets.hw3_format import read_test_ids
from mmcell.datasets.image_io import read_image
from mmcell.datasets.metainfo import num_classes_of
from mmcell.evaluation.submission import (
    SubmissionOptions,
    check_submission_path,
    encode_data_sample,
    write_submission,
)
from mmcell.exporters.image import save_labels as write_label_files
from mmcell.exporters.image import segmentation_of
from mmcell.models.fusion import fuse_instances
from mmcell.utils.checkpoint import detector_of
from mmcell.utils.errors import HW3FormatError
from mmcell.utils.fileio import check_output_path

from .builder import ConfigType, init_cell_model
from .predict import predict_images


def parse_model_spec(spec: str) -> Tuple[str, str, float]:
    """``CONFIG:CHECKPOINT[:WEIGHT]`` -> (config, checkpoint, weight)."""
    parts = spec.split(':')
    weight = 1.0
    if len(parts) == 3:
        try:
            weight = float(parts[2])
        except ValueError:
            raise ValueError(f'{spec}: the weight after the second ":" must be a number') from None
        parts = parts[:2]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f'{spec}: expected CONFIG:CHECKPOINT or CONFIG:CHECKPOINT:WEIGHT')
    return parts[0], parts[1], weight


def predict_release_ensemble(models: Sequence[Tuple[str, str, float]], data_root: str, out_file: str,
                             ids_file: Optional[str] = None, img_dir: Optional[str] = None, options: Any = None,
                             device: str = 'cpu', iou_thr: float = 0.55, vote_thr: float = 0.5,
                             trust_checkpoint: bool = False, progress: bool = True, **model_kwargs: Any) -> Any:
    """Predict a release folder with every model, fuse per image and write the submission (SUBMIT's writer).

    Args:
        models: ``(config, checkpoint, weight)`` or ``'CONFIG:CHECKPOINT[:WEIGHT]'`` per model.
        data_root, out_file, ids_file, img_dir, options: as :func:`mmcell.apis.builder.predict_release`;
            ``options.max_per_img`` caps the fused instances per image (None: the first model's
            ``test_cfg.rcnn.max_per_img``).
        device, trust_checkpoint, **model_kwargs: as :func:`mmcell.apis.builder.init_cell_model` (e.g.
            ``tta=True``, ``fast=False``).
        iou_thr, vote_thr: see :func:`mmcell.models.fusion.fuse_instances`.
        progress: print one line per model.

    Returns:
        the :class:`mmcell.evaluation.submission.SubmissionReport`.
    """


    models = [parse_model_spec(m) if isinstance(m, str) else tuple(m) for m in models]
    if not models:
        raise ValueError('an ensemble needs at least one CONFIG:CHECKPOINT')
    options = options or SubmissionOptions()
    images, paths = release_images(data_root, out_file, ids_file, img_dir)
    per_model: List[list] = []
    num_classes = max_per_img = None
    for k, (config, checkpoint, _) in enumerate(models):
        model = init_cell_model(config, checkpoint, device=device, trust_checkpoint=trust_checkpoint,
                                **model_kwargs)
        classes = num_classes_of(model.dataset_meta)
        if num_classes is not None and classes != num_classes:
            raise ValueError(f'{config}: {classes} classes but the first model has {num_classes}')
        num_classes = classes
        if max_per_img is None:
            max_per_img = options.max_per_img or int(detector_of(model).roi_head.test_cfg.get('max_per_img', 1000))
        if progress:
            print(f'model {k + 1}/{len(models)}: {config}')
        preds = []
        for img, path in zip(images, paths):  # one image at a time: bounded memory
            sample = predict_images(model, [path], img_ids=[img['id']], sizes=[(img['height'], img['width'])],
                                    progress=False)[0]
            preds.append(sample)
        per_model.append(preds)
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    weights = [m[2] for m in models]
    results = []
    for i, img in enumerate(images):
        sample = per_model[0][i].clone()
        sample.pred_instances = fuse_instances([p[i].pred_instances for p in per_model], weights, img['height'],
                                               img['width'], iou_thr, vote_thr, max_per_img)
        results += encode_data_sample(sample, img['id'], options, num_classes,
                                      expected_size=(img['height'], img['width']))
    return write_submission(results, out_file, images, num_classes=num_classes)


def predict_release(model: torch.nn.Module, data_root: str, out_file: str, ids_file: Optional[str] = None,
                    img_dir: Optional[str] = None, options: Any = None, batch_size: int = 1,
                    save_labels: Optional[str] = None, labels_score_thr: Optional[float] = None,
                    progress: bool = True) -> Any:
    """Predict every image of a release folder and write the submission (``.zip`` or bare ``.json``).

    Each image is decoded once (:func:`mmcell.datasets.image_io.read_image`): the same pixels feed the model and,
    with ``save_labels``, the intensity columns of its cell table.

    Args:
        model: from :func:`mmcell.apis.builder.init_cell_model`.
        data_root: folder with ``test_release/`` and ``test_image_name_to_ids.json``.
        out_file: ``results.zip`` (holding ``test-results.json``) or ``*.json`` (the bare list).
        ids_file: the ids json (default ``data_root/test_image_name_to_ids.json``).
        img_dir: the test images (default ``data_root/test_release``).
        options: :class:`mmcell.evaluation.submission.SubmissionOptions`.
        batch_size: images per forward pass.
        save_labels: also write each image's label TIFF, class map and cell table into this folder
            (:func:`mmcell.exporters.save_labels`), from the same forward pass.
        labels_score_thr: score threshold of ``save_labels`` (default
            :data:`mmcell.evaluation.submission.LABEL_SCORE_THR`).
        progress: show a progress bar.

    Returns:
        the :class:`mmcell.evaluation.submission.SubmissionReport` of the written file.

    Raises:
        HW3FormatError: missing ids json, a test image the json does not list, an empty test folder.
        SubmissionError: an output path that cannot be written (checked before inference), a format problem.
    """
    options = options or SubmissionOptions()
    images, paths = release_images(data_root, out_file, ids_file, img_dir)
    num_classes = num_classes_of(model.dataset_meta)
    names = tuple((model.dataset_meta or {}).get('classes', ()))
    bar = ProgressBar(len(paths)) if progress else None
    results = []
    for start in range(0, len(paths), batch_size):
        batch, batch_paths = images[start:start + batch_size], paths[start:start + batch_size]
        pixels = [read_image(p) for p in batch_paths]
        samples = predict_images(model, batch_paths, len(batch_paths), img_ids=[img['id'] for img in batch],
                                 sizes=[(img['height'], img['width']) for img in batch], images=pixels,
                                 progress=False)
        for img, path, rgb, sample in zip(batch, batch_paths, pixels, samples):
            results += encode_data_sample(sample, img['id'], options, num_classes,
                                          expected_size=(img['height'], img['width']))
            if save_labels:
                write_label_files(segmentation_of(sample, path, names, labels_score_thr, rgb), save_labels,
                                  model.dataset_meta)
            if bar is not None:
                bar.update()
    if bar is not None:
        print()
    return write_submission(results, out_file, images, num_classes=num_classes)


def predict_submission(config: ConfigType, checkpoint: str, data_root: str, out_file: str,
                       ids_file: Optional[str] = None, img_dir: Optional[str] = None, options: Any = None,
                       device: str = 'cpu', batch_size: int = 1, cfg_options: Optional[dict] = None,
                       extra_models: Sequence[tuple] = (), save_labels: Optional[str] = None,
                       labels_score_thr: Optional[float] = None, trust_checkpoint: bool = False,
                       progress: bool = True, fuse_iou_thr: float = 0.55, vote_thr: float = 0.5,
                       **model_kwargs: Any) -> Any:
    """``tools/predict.py`` in one call: check every input and output, build the model, write the submission.

    Args:
        config, checkpoint: the model (``checkpoint`` is validated, see :func:`init_cell_model`).
        data_root, out_file, ids_file, img_dir, options, batch_size, progress: as :func:`predict_release`.
        device, cfg_options, trust_checkpoint, **model_kwargs: as :func:`init_cell_model` (``fast``, ``tta``,
            ``tta_scales``, ``tile``, ...).
        extra_models: more ``(config, checkpoint, weight)`` (or ``'CONFIG:CHECKPOINT[:W]'``) to fuse with this
            one (:func:`predict_release_ensemble`).
        save_labels: also write label TIFFs, class maps and cell tables into this folder.
        labels_score_thr: score threshold of ``save_labels`` (default
            :data:`mmcell.evaluation.submission.LABEL_SCORE_THR`).
        fuse_iou_thr, vote_thr: with ``extra_models``: see :func:`mmcell.models.fusion.fuse_instances`.

    Returns:
        the :class:`mmcell.evaluation.submission.SubmissionReport` of the written file.
    """
    release_images(data_root, out_file, ids_file, img_dir)  # inputs and --out, before any model is built
    if save_labels:
        check_output_path(save_labels, is_dir=True)
    if extra_models:

        extra_models = [parse_model_spec(m) if isinstance(m, str) else m for m in extra_models]
        if save_labels:
            raise ValueError(f'{save_labels}: label images are not written for ensembles (drop --save-labels)')
        return predict_release_ensemble([(config, checkpoint, 1.0), *extra_models], data_root, out_file,
                                        ids_file=ids_file, img_dir=img_dir, options=options, device=device,
                                        trust_checkpoint=trust_checkpoint, progress=progress, iou_thr=fuse_iou_thr,
                                        vote_thr=vote_thr, **model_kwargs)
    model = init_cell_model(config, checkpoint, device=device, cfg_options=cfg_options,
                            trust_checkpoint=trust_checkpoint, **model_kwargs)
    return predict_release(model, data_root, out_file, ids_file=ids_file, img_dir=img_dir, options=options,
                           batch_size=batch_size, save_labels=save_labels, labels_score_thr=labels_score_thr,
                           progress=progress)


def release_images(data_root: str, out_file: str, ids_file: Optional[str] = None,
                   img_dir: Optional[str] = None) -> tuple:
    """The test images of a release folder (ids json entries and their paths), checked before any inference.

    Raises:
        HW3FormatError: missing ids json, a test image the json does not list, an empty test folder.
        SubmissionError: ``out_file`` cannot be written.
    """
    ids_file = ids_file or osp.join(data_root, 'test_image_name_to_ids.json')
    img_dir = img_dir or osp.join(data_root, 'test_release')
    images = read_test_ids(ids_file, img_dir)
    if not images:
        raise HW3FormatError(img_dir, f'no test images (and {osp.basename(ids_file)} lists none)')
    check_submission_path(out_file)
    return images, [osp.join(img_dir, img['file_name']) for img in images]
