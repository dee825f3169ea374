"""Ensembles: several models' predictions of a release folder fused into one submission."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import torch


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
        data_root, out_file, ids_file, img_dir, options: as :func:`mmcell.apis.inference.predict_release`;
            ``options.max_per_img`` caps the fused instances per image (None: the first model's
            ``test_cfg.rcnn.max_per_img``).
        device, trust_checkpoint, **model_kwargs: as :func:`mmcell.apis.inference.init_cell_model` (e.g.
            ``tta=True``, ``fast=False``).
        iou_thr, vote_thr: see :func:`mmcell.models.fusion.fuse_instances`.
        progress: print one line per model.

    Returns:
        the :class:`mmcell.evaluation.submission.SubmissionReport`.
    """
    from mmcell.evaluation.submission import SubmissionOptions, encode_data_sample, write_submission
    from mmcell.models.fusion import fuse_instances
    from mmcell.utils.checkpoint import detector_of

    from .inference import init_cell_model, predict_images, release_images

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
        classes = len((model.dataset_meta or {}).get('classes', ())) or 4
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
