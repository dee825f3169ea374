"""The one builder of inference models, shared by every tool and command.

:func:`inference_config` chooses the inference variant (fast CPU modules, TTA, tiles, precision) in one place,
:func:`init_cell_model` builds the model from it and loads the checkpoint with mmcell's rules, and
:func:`add_model_args` / :func:`model_kwargs_of` give every tool the same flags. :func:`build_test_pipeline` finds a
config's test pipeline as mmdet's ``inference_detector`` does.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Optional, Sequence, Union

import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.logging import print_log

from mmcell.models import fast_inference_model_cfg, tta_pipeline_of
from mmcell.models.openvino_trunk import (
    ENGINE_CHOICES,
    HEADS_PRECISION,
    EngineError,
    OpenVINOMaskHead,
    OpenVINOTrunk,
    install_mask_head_engine,
    install_trunk_engine,
    resolve_engine,
)
from mmcell.utils import load_config, register_all_modules
from mmcell.utils.checkpoint import CheckpointError, detector_of, load_inference_checkpoint
from mmcell.utils.precision import PRECISION_CHOICES, resolve_precision
from mmcell.utils.setup_env import check_device

ConfigType = Union[str, os.PathLike, Config]

#: Model types that wrap a detector (``module=``) and change how it predicts; a config may hold one directly.
INFERENCE_WRAPPERS = ('CellTTAModel', 'TiledDetector')


def inference_config(config: ConfigType, cfg_options: Optional[dict] = None, fast: bool = True,
                     mask_format: str = 'rle', precision: Optional[str] = None, device: str = 'cpu', tta: bool = False,
                     tta_scales: Optional[Sequence[float]] = None, tta_flips: Optional[Sequence[str]] = None,
                     tta_rotations: Optional[Sequence[int]] = None, tile: Optional[int] = None,
                     tile_overlap: Optional[int] = None, engine: Optional[str] = None) -> Config:
    """The config whose ``model`` every mmcell tool predicts with: the one place inference variants are chosen.

    ``init_cell_model`` builds from it, ``tools/test.py`` hands it to the Runner, so ``predict.py``, ``segment``,
    ``ensemble.py`` and ``test.py`` run the same modules for the same flags.

    Args:
        config: config file or ``Config`` (``model`` may already be a ``TiledDetector``/``CellTTAModel``).
        cfg_options: ``--cfg-options`` overrides.
        fast: switch a Mask R-CNN to :mod:`mmcell.models.fast_mask_rcnn` (same checkpoints, same masks, faster on
            CPU); other detectors keep mmdet's modules. ``False`` (``--no-fast``) runs mmdet's own.
        mask_format: ``'rle'`` (memory ~ boxes) or ``'bitmap'`` masks in the fast path and the wrappers.
        precision: the one precision switch (``--precision``; :mod:`mmcell.utils.precision`): ``'fp32'``,
            ``'bf16'`` (backbone, FPN, RPN, box and mask heads in bfloat16, float32 at their outputs), ``'int8'``
            (int8 mask head, the rest float32; with OpenVINO the int8 trunk and mask head), ``'int8-bf16'`` (the
            OpenVINO int8 trunk and mask head, the box head bf16) or ``'auto'`` (bf16 on CPUs with native bfloat16
            units, else fp32). None: the config's ``precision`` key, else its ``FastFCNMaskHead.precision``, else
            ``'auto'``. One log line says what was chosen; the config returned holds it as ``precision``. Needs the
            fast Mask R-CNN (``fast=True``) for anything but fp32.
        device: where the model will run (``'auto'`` picks fp32 off the CPU).
        tta: wrap in ``CellTTAModel`` (the config's ``tta_model`` if it has one, else flips none/h/v).
        tta_scales: TTA scale multipliers of the test resize; None: the config's ``tta_pipeline`` if any, else 1.0.
        tta_flips, tta_rotations: override the TTA model's flips / 90-degree rotations.
        tile: wrap in ``TiledDetector`` with this tile size (network-input pixels).
        tile_overlap: overlap between tiles (default ``min(128, tile // 4)``).
        engine: the inference engine switch (``--engine``; :mod:`mmcell.models.openvino_trunk`): ``'torch'``,
            ``'openvino'`` (OpenVINO runs backbone, FPN and RPN head; the rest stays mmcell's torch path) or
            ``'auto'`` (OpenVINO on AMX CPUs where it is installed, else torch; OpenVINO for ``int8-bf16``).
            None: the config's ``engine`` key, else
            ``'torch'``. One log line says what was chosen; the config returned holds it as ``engine``
            (:func:`apply_engine` installs it once the weights are loaded). With OpenVINO, ``int8`` is the trunk's
            (``tools/misc/quantize.py``), with the OpenVINO int8 mask head where quantize.py made one, and the torch
            box head (and a mask head without an int8 one) in float32; ``int8-bf16`` the same int8 parts with the
            torch heads in bfloat16 (OpenVINO only: ``auto`` picks OpenVINO for it).

    Limits and thresholds (``max_per_img``, ``score_thr``, ``mask_thr_binary``, NMS) stay those of
    ``model.test_cfg.rcnn``: the wrappers read them from the detector they wrap.
    """


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
    requested = (precision or cfg.get('precision')
                 or (model.get('roi_head') or {}).get('mask_head', {}).get('precision') or 'auto')
    fast_model = None
    if fast:
        try:
            fast_model = fast_inference_model_cfg(model, mask_format=mask_format)
        except ValueError:
            pass  # not a Mask R-CNN: mmdet's inference
    if fast_model is None and requested not in ('auto', 'fp32'):
        raise ValueError(f'precision {requested}: needs the fast Mask R-CNN (a Mask R-CNN config, without --no-fast)')
    chosen = resolve_precision(requested if fast_model is not None else 'fp32', device)
    requested_engine = engine or cfg.get('engine') or 'torch'
    cfg.engine = resolve_engine(requested_engine, device, fast=fast_model is not None, precision=chosen)
    cfg.engine_requested = str(requested_engine).lower()
    if fast_model is not None:  # int8 / int8-bf16 with OpenVINO: the trunk's; the torch heads fp32 / bf16
        heads = HEADS_PRECISION[chosen] if cfg.engine == 'openvino' else chosen
        model = fast_inference_model_cfg(model, precision=heads, mask_format=mask_format)
    elif not fast:  # --no-fast: mmdet's own RoIAlign too, even where a training config chose mmcell's
        for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
            extractor = (model.get('roi_head') or {}).get(key)
            if extractor and extractor.get('type') == 'FastRoIExtractor':
                extractor['type'] = 'SingleRoIExtractor'
                extractor.pop('fast_training', None)
    cfg.precision = chosen
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
    :func:`inference_config`.

    Args:
        config: config file or ``Config``.
        checkpoint: ``.pth`` file (None keeps the initial weights; pretrained backbones are not fetched).
        device: e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options: overrides merged into the config (``--cfg-options`` style dict).
        fast, tta, tile: see :func:`inference_config` (fast modules by default; TTA / tiling wrappers).
        trust_checkpoint: allow a checkpoint that ``weights_only`` refuses to be fully unpickled (it can run
            code); also ``MMCELL_TRUST_CHECKPOINTS=1``.
        **variant: the other :func:`inference_config` arguments (``mask_format``, ``precision``,
            ``tta_scales``, ``tta_flips``, ``tta_rotations``, ``tile_overlap``, ``engine``).

    Returns:
        the model in eval mode on ``device``, with ``.cfg`` (its test pipeline is the one to use) and
        ``.dataset_meta`` set.

    Raises:
        FileNotFoundError: config missing.
        CheckpointError: not a checkpoint, truncated, refused (untrusted pickle), no or empty state_dict, weights
            of the model missing, trained for another number of classes (one line naming the file).
    """


    check_device(device)
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
    return apply_engine(model, checkpoint)


def apply_engine(model: torch.nn.Module, checkpoint: Optional[str] = None) -> torch.nn.Module:
    """Install the engine ``model.cfg.engine`` chose (:func:`inference_config`) on a model whose weights are loaded.

    ``'openvino'``: the trunk is exported (or read from the cache beside ``checkpoint``) and compiled per input
    shape; with ``int8`` / ``int8-bf16`` the int8 mask head of ``tools/misc/quantize.py`` runs too where the cache
    holds it (else the torch head in fp32 / bf16, one log line); with ``engine='auto'`` a trunk OpenVINO cannot
    convert falls back to torch with one log line, asked for explicitly it is an
    :class:`~mmcell.models.openvino_trunk.EngineError` (one line). ``tools/test.py`` calls this after the Runner
    loaded the checkpoint. Returns ``model``.
    """
    cfg = model.cfg
    if cfg.get('engine') != 'openvino':
        return model
    detector = detector_of(model)
    try:
        trunk = OpenVINOTrunk.from_detector(detector, checkpoint, precision=cfg.precision)
    except EngineError as err:
        if cfg.get('engine_requested') != 'auto' or cfg.precision == 'int8-bf16':  # no torch int8-bf16
            raise
        print_log(f'engine: torch (auto; {err})', logger='current')
        cfg.engine = 'torch'
        return model
    install_trunk_engine(detector, trunk)
    if cfg.precision.startswith('int8') and getattr(getattr(detector, 'roi_head', None), 'mask_head', None) is not None:
        install_mask_head_engine(detector, OpenVINOMaskHead.from_trunk(trunk, detector))
    return model


def add_model_args(parser: Any, device: bool = True, tiling: bool = True) -> Any:
    """The flags of :func:`init_cell_model` for a tool's argparse parser (read back with :func:`model_kwargs_of`).

    Every tool that predicts (``predict.py``, ``test.py``, ``mmcell segment``, ``mmcell segment-slide``) takes the
    same flags with the same defaults, because they all end in the one builder.

    Args:
        parser: the tool's parser.
        device: add ``--device``.
        tiling: add ``--tile`` / ``--tile-overlap`` (the ``TiledDetector`` wrapper); ``segment-slide`` tiles the
            slide itself and has its own ``--tile``.
    """
    if device:
        parser.add_argument('--device', default='cpu', help='cpu or cuda:0')
    parser.add_argument('--no-fast', action='store_true',
                        help="mmdet's own inference modules instead of mmcell's fast CPU ones (same masks)")
    parser.add_argument('--precision', choices=PRECISION_CHOICES,
                        help="fp32, bf16 (the whole model in bfloat16 autocast), int8 (int8 mask head; with "
                             "--engine openvino the int8 trunk and mask head of tools/misc/quantize.py), int8-bf16 "
                             "(those int8 parts, the box head in bf16; OpenVINO) or auto (bf16 where the CPU has "
                             "native bfloat16 units, else fp32); default: the config's precision key, else auto")
    parser.add_argument('--engine', choices=ENGINE_CHOICES,
                        help="torch, openvino (OpenVINO runs backbone, FPN and RPN head; pip install -r "
                             "requirements/openvino.txt) or auto (openvino on AMX CPUs where it is installed, and for "
                             "--precision int8-bf16; else torch); "
                             "default: the config's engine key, else torch")
    parser.add_argument('--tta', action='store_true',
                        help="mask TTA (CellTTAModel): the config's tta_model, else flips none/h/v")
    parser.add_argument('--tta-scales', type=float, nargs='+',
                        help="TTA scale multipliers of the test resize (default: the config's tta_pipeline, else 1.0)")
    if tiling:
        parser.add_argument('--tile', type=int, help='tiled inference (TiledDetector) with this tile size (input px)')
        parser.add_argument('--tile-overlap', type=int, help='overlap between tiles (default min(128, tile/4))')
    if '--trust-checkpoint' not in parser._option_string_actions:
        parser.add_argument('--trust-checkpoint', action='store_true',
                            help='load a checkpoint that weights_only refuses (it can run code: only files you trust)')
    return parser


def model_kwargs_of(args: Any) -> dict:
    """:func:`init_cell_model` keyword arguments from :func:`add_model_args` flags."""
    kwargs = dict(fast=not args.no_fast, tta=args.tta, trust_checkpoint=args.trust_checkpoint)
    if hasattr(args, 'tile_overlap'):  # add_model_args(tiling=True); segment-slide's own --tile is the slide tile
        kwargs['tile'] = args.tile
        if args.tile_overlap is not None:
            kwargs['tile_overlap'] = args.tile_overlap
    if getattr(args, 'device', None) is not None:
        kwargs['device'] = args.device
    if args.tta_scales is not None:
        kwargs['tta_scales'] = args.tta_scales
    if getattr(args, 'precision', None) is not None:
        kwargs['precision'] = args.precision
    if getattr(args, 'engine', None) is not None:
        kwargs['engine'] = args.engine
    return kwargs


def build_test_pipeline(cfg: Config, compose: bool = True) -> Any:
    """The test pipeline of a config, found as mmdet's ``inference_detector`` finds it."""
    # deferred: mmdet.apis imports every mmdet model at import time
    from mmdet.apis.inference import get_test_pipeline_cfg

    try:
        pipeline = get_test_pipeline_cfg(cfg)
    except (RuntimeError, AttributeError, KeyError):
        pipeline = cfg.get('test_pipeline')
    if not pipeline:
        raise ValueError(f'{cfg.filename}: no test pipeline (test_dataloader.dataset.pipeline or test_pipeline)')
    return Compose(copy.deepcopy(pipeline)) if compose else copy.deepcopy(pipeline)


