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

from mmcell.utils.checkpoint import CheckpointError, detector_of, load_inference_checkpoint

ConfigType = Union[str, os.PathLike, Config]

#: Model types that wrap a detector (``module=``) and change how it predicts; a config may hold one directly.
INFERENCE_WRAPPERS = ('CellTTAModel', 'TiledDetector')


def _cpu_precision(precision: str, device: str) -> str:
    """``'auto'``: bf16 on CPUs with native AVX512-BF16 (AP50 unchanged on the synthetic test split, see
    benchmarks/RESULTS.md; without native support bf16 would be slower), else fp32."""
    if precision != 'auto':
        return precision
    native = str(device).startswith('cpu') and getattr(torch.cpu, '_is_avx512_bf16_supported', None)
    return 'bf16' if native and torch.cpu._is_avx512_bf16_supported() else 'fp32'


def inference_config(config: ConfigType, cfg_options: Optional[dict] = None, fast: bool = True,
                     mask_format: str = 'rle', precision: str = 'auto', device: str = 'cpu', tta: bool = False,
                     tta_scales: Optional[Sequence[float]] = None, tta_flips: Optional[Sequence[str]] = None,
                     tta_rotations: Optional[Sequence[int]] = None, tile: Optional[int] = None,
                     tile_overlap: Optional[int] = None) -> Config:
    """The config whose ``model`` every mmcell tool predicts with: the one place inference variants are chosen.

    ``init_cell_model`` builds from it, ``tools/test.py`` hands it to the Runner, so ``predict.py``, ``segment``,
    ``ensemble.py`` and ``test.py`` run the same modules for the same flags.

    Args:
        config: config file or ``Config`` (``model`` may already be a ``TiledDetector``/``CellTTAModel``).
        cfg_options: ``--cfg-options`` overrides.
        fast: switch a Mask R-CNN to :mod:`mmcell.models.fast_mask_rcnn` (same checkpoints, same masks, faster on
            CPU); other detectors keep mmdet's modules. ``False`` (``--no-fast``) runs mmdet's own.
        mask_format: ``'rle'`` (memory ~ boxes) or ``'bitmap'`` masks in the fast path and the wrappers.
        precision: fast mask head precision: ``'fp32'``, ``'bf16'``, ``'int8'`` or ``'auto'`` (the config's
            ``FastFCNMaskHead.precision`` if it sets one, else bf16 on CPUs with native AVX512-BF16, else fp32).
        device: where the model will run (for ``precision='auto'``).
        tta: wrap in ``CellTTAModel`` (the config's ``tta_model`` if it has one, else flips none/h/v).
        tta_scales: TTA scale multipliers of the test resize; None: the config's ``tta_pipeline`` if any, else 1.0.
        tta_flips, tta_rotations: override the TTA model's flips / 90-degree rotations.
        tile: wrap in ``TiledDetector`` with this tile size (network-input pixels).
        tile_overlap: overlap between tiles (default ``min(128, tile // 4)``).

    Limits and thresholds (``max_per_img``, ``score_thr``, ``mask_thr_binary``, NMS) stay those of
    ``model.test_cfg.rcnn``: the wrappers read them from the detector they wrap.
    """
    from mmcell.models import fast_inference_model_cfg, tta_pipeline_of

    from ..utils import load_config

    if tta and tile:
        raise ValueError('TTA and tiled inference cannot be combined (tile big images, or use TTA)')
    cfg = load_config(config, cfg_options)
    model = copy.deepcopy(cfg.model)
    wrapper = None
    if model.get('type') in INFERENCE_WRAPPERS:
        wrapper = {k: v for k, v in model.items() if k != 'module'}
        model = model['module']
    # Inference never needs ImageNet weights (the checkpoint replaces them) and must work offline.
    model.setdefault('backbone', {})['init_cfg'] = None
    model.pop('pretrained', None)
    model.pop('init_cfg', None)
    if precision == 'auto' and (model.get('roi_head') or {}).get('mask_head', {}).get('precision'):
        precision = model['roi_head']['mask_head']['precision']  # a config that chose its fast mask head keeps it
    if fast:
        try:
            model = fast_inference_model_cfg(model, precision=_cpu_precision(precision, device),
                                             mask_format=mask_format)
        except ValueError:
            pass  # not a Mask R-CNN: mmdet's inference
    if wrapper is not None:  # a wrapper from the config predicts in the format the caller needs
        if wrapper['type'] == 'TiledDetector':
            wrapper['mask_format'] = mask_format
        else:
            wrapper['tta_cfg'] = dict(wrapper.get('tta_cfg') or {}, mask_format=mask_format)
    if tile:
        overlap = min(128, tile // 4) if tile_overlap is None else tile_overlap
        wrapper = dict(type='TiledDetector', tile_size=tile, overlap=overlap, mask_format=mask_format)
    elif tta:
        wrapper = copy.deepcopy(dict(cfg.get('tta_model') or dict(type='CellTTAModel',
                                                                  flips=['none', 'horizontal', 'vertical'])))
        if tta_flips is not None:
            wrapper['flips'] = list(tta_flips)
        if tta_rotations is not None:
            wrapper['rotations'] = list(tta_rotations)
        wrapper['tta_cfg'] = dict(wrapper.get('tta_cfg') or {}, mask_format=mask_format)
        if tta_scales is None and cfg.get('tta_pipeline'):
            pipeline = copy.deepcopy(cfg.tta_pipeline)
        else:
            pipeline = tta_pipeline_of(build_test_pipeline(cfg, compose=False), tta_scales or (1.0, ))
        cfg.test_dataloader.dataset.pipeline = pipeline
    cfg.model = dict(wrapper, module=model) if wrapper else model
    return cfg


def init_cell_model(config: ConfigType, checkpoint: Optional[str] = None, device: str = 'cpu',
                    cfg_options: Optional[dict] = None, fast: bool = True, tta: bool = False,
                    tile: Optional[int] = None, trust_checkpoint: bool = False,
                    **variant: Any) -> torch.nn.Module:
    """The one builder of inference models: config + checkpoint (+ flags) -> a model ready for ``test_step``.

    Every mmcell tool and command gets its model here (``tools/predict.py``, ``tools/ensemble.py``,
    ``mmcell segment``, the analysis tools, whole-slide inference); ``tools/test.py`` uses the same
    :func:`inference_config`. ``build_inference_model`` is the same function.

    Args:
        config: config file or ``Config``.
        checkpoint: ``.pth`` file (None keeps the initial weights; pretrained backbones are not fetched).
        device: e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options: overrides merged into the config (``--cfg-options`` style dict).
        fast, tta, tile: see :func:`inference_config` (fast modules by default; TTA / tiling wrappers).
        trust_checkpoint: allow a checkpoint that ``weights_only`` refuses to be fully unpickled (it can run
            code); also ``MMCELL_TRUST_CHECKPOINTS=1``.
        **variant: the other :func:`inference_config` arguments (``mask_format``, ``precision``,
            ``tta_scales``, ``tta_flips``, ``tta_rotations``, ``tile_overlap``).

    Returns:
        the model in eval mode on ``device``, with ``.cfg`` (its test pipeline is the one to use) and
        ``.dataset_meta`` set.

    Raises:
        FileNotFoundError: config missing.
        CheckpointError: not a checkpoint, truncated, refused (untrusted pickle), no or empty state_dict, weights
            of the model missing, trained for another number of classes (one line naming the file).
    """
    from mmdet.registry import DATASETS, MODELS

    from mmcell.utils import register_all_modules

    register_all_modules()
    config_name = str(config.filename if isinstance(config, Config) else config)
    cfg = inference_config(config, cfg_options, fast=fast, tta=tta, tile=tile, device=device, **variant)
    model = MODELS.build(cfg.model)
    model.cfg = cfg

    dataset_meta = None
    if checkpoint is not None:
        meta = load_inference_checkpoint(model, checkpoint, config_name, trust=trust_checkpoint)
        dataset_meta = meta.get('dataset_meta')
    if dataset_meta is None:
        ds_cfg = cfg.get('test_dataloader', {}).get('dataset', {})
        ds_type = DATASETS.get(ds_cfg.get('type', '')) if isinstance(ds_cfg.get('type'), str) else None
        dataset_meta = dict(getattr(ds_type, 'METAINFO', {}) or {})
    detector = detector_of(model)
    num_classes = getattr(getattr(getattr(detector, 'roi_head', None), 'bbox_head', None), 'num_classes', None)
    classes = tuple(dataset_meta.get('classes', ()))
    if num_classes is not None and classes and len(classes) != num_classes:
        raise CheckpointError(f'{checkpoint or config_name}: {len(classes)} classes {classes} but '
                              f'{config_name} has num_classes={num_classes}')
    model.dataset_meta = dataset_meta
    detector.dataset_meta = dataset_meta
    model.to(device)
    model.eval()
    return model


#: The name the whole-slide code and older callers use: the same builder.
build_inference_model = init_cell_model


def add_model_args(parser: Any, device: bool = True) -> Any:
    """The flags of :func:`init_cell_model` for a tool's argparse parser (read back with :func:`model_kwargs_of`).

    Every tool that predicts (``predict.py``, ``ensemble.py``, ``test.py``, ``mmcell segment``) takes the same
    flags with the same defaults, because they all end in the one builder.
    """
    if device:
        parser.add_argument('--device', default='cpu', help='cpu or cuda:0')
    parser.add_argument('--no-fast', action='store_true',
                        help="mmdet's own inference modules instead of mmcell's fast CPU ones (same masks)")
    parser.add_argument('--tta', action='store_true',
                        help="mask TTA (CellTTAModel): the config's tta_model, else flips none/h/v")
    parser.add_argument('--tta-scales', type=float, nargs='+',
                        help="TTA scale multipliers of the test resize (default: the config's tta_pipeline, else 1.0)")
    parser.add_argument('--tile', type=int, help='tiled inference (TiledDetector) with this tile size (input px)')
    parser.add_argument('--tile-overlap', type=int, help='overlap between tiles (default min(128, tile/4))')
    if '--trust-checkpoint' not in parser._option_string_actions:
        parser.add_argument('--trust-checkpoint', action='store_true',
                            help='load a checkpoint that weights_only refuses (it can run code: only files you trust)')
    return parser


def model_kwargs_of(args: Any) -> dict:
    """:func:`init_cell_model` keyword arguments from :func:`add_model_args` flags."""
    kwargs = dict(fast=not args.no_fast, tta=args.tta, tile=args.tile, trust_checkpoint=args.trust_checkpoint)
    if getattr(args, 'device', None) is not None:
        kwargs['device'] = args.device
    if args.tta_scales is not None:
        kwargs['tta_scales'] = args.tta_scales
    if args.tile_overlap is not None:
        kwargs['tile_overlap'] = args.tile_overlap
    return kwargs


def build_test_pipeline(cfg: Config, compose: bool = True) -> Any:
    """The test pipeline of a config, found as mmdet's ``inference_detector`` finds it."""
    from mmdet.apis.inference import get_test_pipeline_cfg

    try:
        pipeline = get_test_pipeline_cfg(cfg)
    except (RuntimeError, AttributeError, KeyError):
        pipeline = cfg.get('test_pipeline')
    if not pipeline:
        raise ValueError(f'{cfg.filename}: no test pipeline (test_dataloader.dataset.pipeline or test_pipeline)')
    return Compose(copy.deepcopy(pipeline)) if compose else copy.deepcopy(pipeline)


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
                   progress: bool = True) -> list:
    """Run the model on image files through the config's test pipeline.

    What mmdet's ``inference_detector`` does (the pipeline of ``get_test_pipeline_cfg``, ``test_step`` under
    ``no_grad``), plus batches, contest image ids and a check that predictions come back at the original size.

    Args:
        model: from :func:`init_cell_model`.
        image_paths: image files (TIFF or anything the test pipeline loads).
        batch_size: images per forward pass.
        img_ids: ids stored in the samples (``img_id``); default 0..N-1.
        sizes: expected (H, W) of each image (e.g. from the ids json); a different loaded size is an error.
        progress: show a progress bar.

    Returns:
        one ``DetDataSample`` per image; ``pred_instances`` (bboxes, labels, scores, masks) in original pixels.
    """
    from mmengine.utils import ProgressBar

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


def predict_submission(config: ConfigType, checkpoint: str, data_root: str, out_file: str,
                       ids_file: Optional[str] = None, img_dir: Optional[str] = None, options: Any = None,
                       device: str = 'cpu', batch_size: int = 1, cfg_options: Optional[dict] = None,
                       extra_models: Sequence[tuple] = (), save_labels: Optional[str] = None,
                       labels_score_thr: Optional[float] = None, trust_checkpoint: bool = False,
                       progress: bool = True, **model_kwargs: Any) -> Any:
    """``tools/predict.py`` in one call: check every input and output, build the model, write the submission.

    Args:
        config, checkpoint: the model (``checkpoint`` is validated, see :func:`init_cell_model`).
        data_root, out_file, ids_file, img_dir, options, batch_size, progress: as :func:`predict_release`.
        device, cfg_options, trust_checkpoint, **model_kwargs: as :func:`init_cell_model` (``fast``, ``tta``,
            ``tta_scales``, ``tile``, ...).
        extra_models: more ``(config, checkpoint, weight)`` (or ``'CONFIG:CHECKPOINT[:W]'``) to fuse with this
            one (:mod:`mmcell.apis.ensemble`).
        save_labels: also write label TIFFs, class maps and cell tables into this folder.
        labels_score_thr: score threshold of ``save_labels`` (default
            :data:`mmcell.evaluation.submission.LABEL_SCORE_THR`).

    Returns:
        the :class:`mmcell.evaluation.submission.SubmissionReport` of the written file.
    """
    from mmcell.utils.fileio import check_output_path

    release_images(data_root, out_file, ids_file, img_dir)  # inputs and --out, before any model is built
    if save_labels:
        check_output_path(save_labels, is_dir=True)
    if extra_models:
        from .ensemble import parse_model_spec, predict_release_ensemble

        extra_models = [parse_model_spec(m) if isinstance(m, str) else m for m in extra_models]
        if save_labels:
            raise ValueError(f'{save_labels}: label images are not written for ensembles (drop --save-labels)')
        return predict_release_ensemble([(config, checkpoint, 1.0), *extra_models], data_root, out_file,
                                        ids_file=ids_file, img_dir=img_dir, options=options, device=device,
                                        trust_checkpoint=trust_checkpoint, progress=progress, **model_kwargs)
    model = init_cell_model(config, checkpoint, device=device, cfg_options=cfg_options,
                            trust_checkpoint=trust_checkpoint, **model_kwargs)
    if save_labels:
        from .segment import LabelSaver

        model = LabelSaver(model, save_labels, labels_score_thr)
    return predict_release(model, data_root, out_file, ids_file=ids_file, img_dir=img_dir, options=options,
                           batch_size=batch_size, progress=progress)


def release_images(data_root: str, out_file: str, ids_file: Optional[str] = None,
                   img_dir: Optional[str] = None) -> tuple:
    """The test images of a release folder (ids json entries and their paths), checked before any inference.

    Raises:
        HW3FormatError: missing ids json, a test image the json does not list, an empty test folder.
        SubmissionError: ``out_file`` cannot be written.
    """
    from mmcell.datasets.hw3_format import HW3FormatError, read_test_ids
    from mmcell.evaluation.submission import check_submission_path

    ids_file = ids_file or osp.join(data_root, 'test_image_name_to_ids.json')
    img_dir = img_dir or osp.join(data_root, 'test_release')
    images = read_test_ids(ids_file, img_dir)
    if not images:
        raise HW3FormatError(img_dir, f'no test images (and {osp.basename(ids_file)} lists none)')
    check_submission_path(out_file)
    return images, [osp.join(img_dir, img['file_name']) for img in images]
