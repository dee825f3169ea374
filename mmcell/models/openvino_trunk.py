"""The inference engine switch: OpenVINO runs the convolutional trunk of a fast Mask R-CNN (``--engine openvino``).

The trunk is backbone + FPN + RPN head (the convolutions of a whole tile): it is exported from the torch modules with
``openvino.convert_model`` (dynamic batch, height and width), compiled by OpenVINO's CPU plugin
(once: dynamic shapes; fused conv + GroupNorm + ReLU graphs in oneDNN) and run in place of
``extract_feat`` + the RPN head's forward. RoIAlign, the box and mask heads, NMS, mask pasting and RLE stay in
mmcell's fast torch path (:mod:`mmcell.models.fast_mask_rcnn`), so TTA, tiles and slides run the same code.

The int8 routes (``--precision int8`` / ``int8-bf16``) also run the **mask head** in OpenVINO int8 when
``tools/misc/quantize.py`` made one (:class:`OpenVINOMaskHead`: its conv tower, deconv and logits, calibrated on the
RoI features of the same images as the trunk; RoIAlign stays mmcell's): on the AMD EPYC box 52 vs 151 ms for the 744
RoIs of a tile in torch bf16 (benchmarks/RESULTS.md). A cache without it runs the torch head, with one line.

Cache (``<checkpoint>.openvino/`` beside the checkpoint): ``trunk.xml/.bin`` (the exported IR), one compiled blob per
part and precision (``trunk-fp32.blob``), the quantised parts (``trunk-int8.*``, ``mask_head-int8.*``) and
``cache.json``, which holds the key (checkpoint SHA-256, the trunk's architecture, OpenVINO version, export format),
the quantised mask head's own key (its architecture) and each file's SHA-256. A cache whose key differs is stale, a
file whose digest differs (or that OpenVINO cannot read) is damaged: either is rebuilt with one log line saying so (a
quantised part cannot be rebuilt without its calibration data: ``tools/misc/quantize.py`` again). The cache holds
OpenVINO IR and compiled blobs only: reading it never runs Python code. A checkpoint folder that cannot be written
runs without a cache (one line).
"""
from __future__ import annotations

import hashlib
import json
import os
import types
from pathlib import Path
from typing import Any, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor, nn
from torch.profiler import record_function

from mmcell.utils.errors import InputError, one_line
from mmcell.utils.fileio import atomic_write_bytes, write_json
from mmcell.utils.precision import cpu_matrix_units, describe_units

ENGINES = ('torch', 'openvino')
#: what a flag or config key may say (``auto``: OpenVINO on AMX CPUs where it is installed, see :func:`resolve_engine`)
ENGINE_CHOICES = ('auto', *ENGINES)
#: bump when the exported graph changes (its inputs, outputs or modules): older caches are then stale
TRUNK_FORMAT = 2
#: bump when the exported mask head's graph changes: an older quantised mask head is then stale (the torch head runs)
MASK_HEAD_FORMAT = 1
#: the parts of the model an engine cache may hold (file names start with these)
PARTS = ('trunk', 'mask_head')
#: OpenVINO's ``INFERENCE_PRECISION_HINT`` per mmcell precision (int8 and int8-bf16 run the quantised IR with its
#: float parts -- GroupNorm, the FPN's adds and resizes -- in f32: on AVX512-BF16 without AMX the int8 trunk took
#: 94 ms so, 102 ms with them in bf16, at 1280x1280; benchmarks/RESULTS.md "int8 trunk + bf16 heads")
OV_PRECISION = {'fp32': 'f32', 'bf16': 'bf16', 'int8': 'f32', 'int8-bf16': 'f32'}  # names of openvino.Type
#: the torch heads' precision (``FastMaskRCNN`` / ``FastFCNMaskHead``) per precision of the OpenVINO route
HEADS_PRECISION = {'fp32': 'fp32', 'bf16': 'bf16', 'int8': 'fp32', 'int8-bf16': 'bf16'}
INSTALL_HINT = 'pip install -r requirements/openvino.txt'


class EngineError(InputError):
    """The engine asked for cannot run: OpenVINO missing, a device it does not serve, a model it cannot convert."""


def openvino_version() -> Optional[str]:
    """The installed OpenVINO's version (``'2026.4.1-...'``), None where it is not installed."""
    try:
        import openvino as ov
    except ImportError:
        return None
    return str(ov.get_version())


def _log(line: str) -> None:
    print_log(line, logger='current')


def resolve_engine(requested: Optional[str], device: str = 'cpu', fast: bool = True, log: bool = True,
                   precision: Optional[str] = None) -> str:
    """The engine to run: ``'torch'`` or ``'openvino'``; one log line says which (and why, for ``auto``).

    Args:
        requested: ``'torch'``, ``'openvino'``, ``'auto'`` or None (= ``'torch'``). ``auto`` is OpenVINO only on
            CPUs with AMX (where it is installed; not measured by mmcell yet, OpenVINO's bf16/int8 AMX kernels are the
            published case); on AVX-512 without AMX (AMD EPYC) torch, which measured as fast or faster.
        device: where the model runs; OpenVINO serves the CPU only.
        fast: the model is a fast Mask R-CNN (the only one whose trunk OpenVINO runs).
        log: write the line.
        precision: the resolved precision; ``'int8-bf16'`` exists on OpenVINO only, so ``auto`` picks OpenVINO
            for it on any CPU, and ``torch`` (or an OpenVINO that cannot run) is an error, not a fallback.

    Raises:
        EngineError: ``'openvino'`` asked where it cannot run (not installed, not a CPU, not a fast Mask R-CNN);
            ``auto`` falls back to torch instead, and says so.
    """
    name = 'torch' if requested is None else str(requested).lower()
    if name not in ENGINE_CHOICES:
        raise ValueError(f'engine must be one of {", ".join(ENGINE_CHOICES)}, not {requested!r}')
    openvino_only = precision == 'int8-bf16'
    if name == 'torch':
        if openvino_only:
            raise EngineError(f'precision {precision}: the OpenVINO int8 trunk with bf16 heads; needs --engine '
                              'openvino (or auto)')
        return 'torch'
    version = openvino_version()
    why = None
    if not str(device).startswith('cpu'):
        why = f'OpenVINO runs on the CPU, not {device}'
    elif not fast:
        why = 'OpenVINO runs the fast Mask R-CNN only (a Mask R-CNN config, without --no-fast)'
    elif version is None:
        why = f'OpenVINO is not installed ({INSTALL_HINT})'
    elif name == 'auto' and not openvino_only and not cpu_matrix_units()['amx']:
        why = (f'{describe_units()}: the OpenVINO trunk measured no faster than torch here, fp32 0.72x, bf16 0.84x, '
               'int8 + bf16 heads 1.01-1.12x per tile, benchmarks/RESULTS.md "Inference engine"')
    if why is not None:
        if name == 'openvino' or openvino_only:
            raise EngineError(f'engine openvino: {why}')
        if log:
            _log(f'engine: torch (auto; {why})')
        return 'torch'
    if log:
        how = 'asked' if name == 'openvino' else f'auto; precision {precision}' if openvino_only else 'auto'
        _log(f'engine: openvino {version} ({how}; the trunk: backbone, FPN, RPN head)')
    return 'openvino'


class TrunkModule(nn.Module):
    """Backbone + neck + RPN head of a two-stage detector as one module: ``x -> (*feats, *cls_scores, *bbox_preds)``,
    the graph OpenVINO converts (float32, eval mode, no autocast wrapper)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.backbone = detector.backbone
        self.neck = detector.neck if getattr(detector, 'with_neck', False) else None
        self.rpn_head = detector.rpn_head

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        feats = self.backbone(x)
        if self.neck is not None:
            feats = self.neck(feats)
        cls_scores, bbox_preds = type(self.rpn_head).forward(self.rpn_head, tuple(feats))  # not an instance wrapper
        return (*feats, *cls_scores, *bbox_preds)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def architecture_digest(detector: nn.Module) -> str:
    """SHA-256 of what the exported graph depends on besides the weights: the trunk's module structure and the
    shapes and dtypes of its state (a config change that keeps the checkpoint makes the cache stale)."""
    trunk = TrunkModule(detector)
    text = repr(trunk) + ''.join(f'{k}:{tuple(v.shape)}:{v.dtype};' for k, v in trunk.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()


def weights_digest(detector: nn.Module) -> str:
    """SHA-256 of the trunk's weights (the key when there is no checkpoint file)."""
    digest = hashlib.sha256()
    for k, v in TrunkModule(detector).state_dict().items():
        digest.update(k.encode())
        digest.update(v.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cache_key(detector: nn.Module, checkpoint: Optional[str] = None) -> dict:
    """The engine cache's key: trunk export format, OpenVINO version, the trunk's architecture, the checkpoint's
    SHA-256 (the trunk's weights' without a checkpoint file). A cache whose key differs is stale."""
    return dict(trunk_format=TRUNK_FORMAT, openvino=openvino_version(), architecture=architecture_digest(detector),
                checkpoint_sha256=_sha256(Path(checkpoint)) if checkpoint else weights_digest(detector))


def cache_dir_of(checkpoint: Optional[str]) -> Optional[Path]:
    """Where the engine cache of ``checkpoint`` lives: ``<checkpoint>.openvino/`` beside it (None: no checkpoint)."""
    return None if checkpoint is None else Path(f'{checkpoint}.openvino')


class CompiledPart:
    """One part of the model compiled by OpenVINO, its blob cached beside the checkpoint (the trunk, the mask head).

    Compiled once (dynamic shapes; kept in memory and, with a cache folder, as ``<part>-<tag>.blob`` on disk); runs on
    ``torch.get_num_threads()`` threads. Subclasses set :attr:`part` and may prepare the model's layouts
    (:meth:`prepared`).

    Args:
        model: the exported (or quantised) ``openvino.Model``.
        precision: ``'fp32'``, ``'bf16'``, ``'int8'`` or ``'int8-bf16'`` (int8*: ``model`` is the quantised IR).
        cache: the cache folder (None: nothing on disk).
        manifest: the cache's ``cache.json`` contents (key and digests), updated as blobs are added; the parts of
            one model share one manifest object (each write holds every part's files).
    """

    part = 'model'

    def __init__(self, model: Any, precision: str = 'fp32', cache: Optional[Path] = None,
                 manifest: Optional[dict] = None) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.model = model
        self.precision = precision
        self.cache = cache
        self.manifest = manifest if manifest is not None else {}
        self._compiled: Any = None

    def compiled(self) -> Any:
        """The model compiled for this precision (from memory, the cache, or compiled now).

        One compiled model serves every input shape (dynamic batch, height, width): on AVX512 without AMX,
        OpenVINO 2026.4's CPU plugin crashed compiling the f32 trunk reshaped to some small static shapes
        (256x320), and static shapes measured no faster at 1024x1024 (0.302 vs 0.312 s f32, 0.069 vs 0.072 s bf16).
        """
        if self._compiled is not None:
            return self._compiled
        config = self.compile_config()
        name = f'{self.part}-{self.blob_tag}.blob'
        compiled = None
        if self.cache is not None:
            data = _read_checked(self.cache, self.manifest, name)
            if data is not None:
                try:
                    compiled = self.core.import_model(data, 'CPU', config)
                except Exception as err:  # noqa: BLE001 -- any failure of a cached blob means: rebuild it
                    _log(f'engine cache {self.cache / name}: damaged ({one_line(err, 120)}); rebuilding it')
        if compiled is None:
            compiled = self.core.compile_model(self.prepared(), 'CPU', config)
            if self.cache is not None:
                try:
                    blob = compiled.export_model()
                    blob = blob.getvalue() if hasattr(blob, 'getvalue') else bytes(blob)  # BytesIO in 2026.4
                    atomic_write_bytes(self.cache / name, blob)
                    self.manifest['files'][name] = hashlib.sha256(blob).hexdigest()
                    write_json(self.cache / 'cache.json', self.manifest, indent=2)
                except OSError as err:
                    _log(f'engine cache {self.cache}: not written ({one_line(err, 120)}); running uncached')
                    self.cache = None
        self._compiled = compiled
        return compiled

    def prepared(self) -> Any:
        """The model as compiled (layouts of its inputs and outputs set)."""
        return self.model

    @property
    def blob_tag(self) -> str:
        """The compiled blob's name part: one per IR and OpenVINO precision (int8 and int8-bf16 share theirs: the
        same IR compiled the same way; they differ in the torch heads only)."""
        return 'int8' if self.precision.startswith('int8') else self.precision

    def compile_config(self) -> dict:
        """OpenVINO CPU properties: the precision (explicit: OpenVINO's own default is bf16 on any CPU with
        AVX512-BF16), latency mode, torch's thread count."""
        import openvino as ov
        import openvino.properties.hint as hints

        return {hints.inference_precision: getattr(ov.Type, OV_PRECISION[self.precision]),
                hints.performance_mode: hints.PerformanceMode.LATENCY,
                'INFERENCE_NUM_THREADS': max(1, torch.get_num_threads())}


class OpenVINOTrunk(CompiledPart):
    """The trunk compiled by OpenVINO: ``trunk(x) -> (feats, (cls_scores, bbox_preds))`` as the torch modules give.

    Build with :meth:`from_detector`; see :class:`CompiledPart` for compiling and the cache.

    Args:
        model: the exported ``openvino.Model`` (dynamic batch, height, width).
        num_levels: FPN levels (the model's outputs are ``3 * num_levels`` tensors).
        precision, cache, manifest: see :class:`CompiledPart`.
    """

    part = 'trunk'

    def __init__(self, model: Any, num_levels: int, precision: str = 'fp32', cache: Optional[Path] = None,
                 manifest: Optional[dict] = None) -> None:
        super().__init__(model, precision, cache, manifest)
        self.num_levels = num_levels

    # building -----------------------------------------------------------------------------------------------------
    @classmethod
    def from_detector(cls, detector: nn.Module, checkpoint: Optional[str] = None, precision: str = 'fp32',
                      cache: bool = True) -> OpenVINOTrunk:
        """Export (or read from the cache beside ``checkpoint``) the trunk of ``detector``.

        Raises:
            EngineError: OpenVINO missing, the trunk cannot be converted, int8 without a quantised trunk.
        """
        version = openvino_version()
        if version is None:
            raise EngineError(f'engine openvino: OpenVINO is not installed ({INSTALL_HINT})')
        folder = cache_dir_of(checkpoint) if cache else None
        manifest = _open_cache(folder, cache_key(detector, checkpoint))
        if folder is None or manifest is None:
            folder = None
            manifest = dict(key=cache_key(detector, checkpoint), files={})
        ir_name = 'trunk-int8' if precision.startswith('int8') else 'trunk'
        model = _read_ir(folder, manifest, ir_name) if folder is not None else None
        if model is None:
            if precision.startswith('int8'):
                raise EngineError(f'engine openvino, precision {precision}: no quantised trunk for '
                                  f'{checkpoint or "this model"}; make it with tools/misc/quantize.py CONFIG CKPT '
                                  '--data DIR')
            model = export_trunk(detector)
            if folder is not None:
                _write_ir(folder, manifest, ir_name, model)
        num_levels = len(model.outputs) // 3
        return cls(model, num_levels, precision, folder, manifest)

    # running ------------------------------------------------------------------------------------------------------
    def prepared(self) -> Any:
        return self.nhwc_features()

    def nhwc_features(self) -> Any:
        """The model with its FPN outputs in NHWC (channels_last): mmcell's RoIAlign gathers one C-vector per
        sample point, ~10x faster from channels_last features (63 vs 6 ms for the box RoIs of a 1250x1250 tile)."""
        from openvino.preprocess import PrePostProcessor

        ppp = PrePostProcessor(self.model.clone())
        for i in range(self.num_levels):
            ppp.output(i).model().set_layout('NCHW')
            ppp.output(i).tensor().set_layout('NHWC')
        return ppp.build()

    def __call__(self, x: Tensor) -> Tuple[Tuple[Tensor, ...], Tuple[List[Tensor], List[Tensor]]]:
        with record_function('# openvino trunk'):
            out = self.compiled()(x.detach().float().contiguous().numpy()).to_tuple()  # copies: ours to keep
        n = self.num_levels
        outs = [torch.from_numpy(o) for o in out]
        feats = tuple(o.permute(0, 3, 1, 2) for o in outs[:n])  # NCHW shape, channels_last memory
        return feats, (outs[n:2 * n], outs[2 * n:3 * n])


class MaskHeadModule(nn.Module):
    """The mask head's convolutions, upsampling and logits as one module, ``(N, C, h, w) -> (N, K, 2h, 2w)`` logits:
    the graph OpenVINO converts (mmdet's ``FCNMaskHead.forward``: float32, no fast path, no autocast)."""

    def __init__(self, mask_head: nn.Module) -> None:
        super().__init__()
        self.head = mask_head

    def forward(self, x: Tensor) -> Tensor:
        from mmdet.models.roi_heads.mask_heads import FCNMaskHead

        return FCNMaskHead.forward(self.head, x)


def mask_head_key(detector: nn.Module) -> dict:
    """What a cached quantised mask head depends on besides the checkpoint (the cache key holds its SHA-256): the
    export format, the head's module structure, the shapes and dtypes of its state, its RoI feature size."""
    head = detector.roi_head.mask_head
    size = tuple(detector.roi_head.mask_roi_extractor.roi_layers[0].output_size)
    text = repr(MaskHeadModule(head)) + str(size) + ''.join(f'{k}:{tuple(v.shape)}:{v.dtype};'
                                                         for k, v in head.state_dict().items())
    return dict(format=MASK_HEAD_FORMAT, architecture=hashlib.sha256(text.encode()).hexdigest())


class OpenVINOMaskHead(CompiledPart):
    """The mask head compiled by OpenVINO (the quantised IR of ``tools/misc/quantize.py``): ``head(x) -> logits``
    as ``FCNMaskHead.forward`` gives them; RoI features in channels_last (mmcell's RoIAlign) are read as they are.

    Build with :meth:`from_trunk` (the trunk's cache and manifest: one cache per checkpoint).

    Args:
        model: the quantised ``openvino.Model`` (dynamic number of RoIs).
        precision, cache, manifest: see :class:`CompiledPart`.
    """

    part = 'mask_head'

    @classmethod
    def from_trunk(cls, trunk: OpenVINOTrunk, detector: nn.Module) -> Optional[OpenVINOMaskHead]:
        """The int8 mask head from ``trunk``'s cache; None, with one log line, where there is none (a cache made
        before mmcell quantised the mask head), it is damaged or stale: the torch mask head runs then."""
        name = 'mask_head-int8'
        where = trunk.cache / f'{name}.xml' if trunk.cache is not None else 'the engine cache'
        if trunk.cache is None:
            why = 'no engine cache'
        elif not any(f.startswith(name) for f in trunk.manifest['files']):
            why = 'none quantised (a cache from before mmcell quantised it; tools/misc/quantize.py makes it)'
        elif (trunk.manifest.get('parts') or {}).get('mask_head') != mask_head_key(detector):
            why = 'stale (the mask head changed since tools/misc/quantize.py; run it again)'
        else:
            model = _read_ir(trunk.cache, trunk.manifest, name)
            if model is not None:
                return cls(model, trunk.precision, trunk.cache, trunk.manifest)
            why = 'damaged (run tools/misc/quantize.py again)'
        _log(f'engine cache {where}: int8 mask head {why}; the mask head runs in torch '
             f'{HEADS_PRECISION[trunk.precision]}')
        return None

    def prepared(self) -> Any:
        """The model reading its RoI features as NHWC (mmcell's RoIAlign writes channels_last: no copy)."""
        from openvino.preprocess import PrePostProcessor

        ppp = PrePostProcessor(self.model.clone())
        ppp.input(0).model().set_layout('NCHW')
        ppp.input(0).tensor().set_layout('NHWC')
        return ppp.build()

    def __call__(self, x: Tensor) -> Tensor:
        with record_function('# openvino mask head'):
            if x.shape[0] == 0:
                shape = self.model.output(0).get_partial_shape()
                return x.new_zeros((0, *(int(d.get_length()) for d in list(shape)[1:])), dtype=torch.float32)
            nhwc = x.detach().float().permute(0, 2, 3, 1).contiguous()  # a view for channels_last features
            return torch.from_numpy(self.compiled()(nhwc.numpy())[0])  # a copy: ours to keep


def export_trunk(detector: nn.Module, size: int = 256) -> Any:
    """``openvino.convert_model`` of :class:`TrunkModule` (float32; dynamic batch, height and width).

    Raises:
        EngineError: the conversion failed (one line naming the first cause).
    """
    import openvino as ov

    trunk = TrunkModule(detector).eval()
    example = torch.zeros(1, 3, size, size)
    try:
        with torch.no_grad():
            return ov.convert_model(trunk, example_input=example, input=[ov.PartialShape([-1, 3, -1, -1])])
    except Exception as err:  # noqa: BLE001 -- the converter raises many types; all mean: cannot convert
        raise EngineError(f'engine openvino: cannot convert the trunk of {type(detector).__name__} '
                          f'({one_line(err, 160)})') from None


def export_mask_head(detector: nn.Module) -> Any:
    """``openvino.convert_model`` of :class:`MaskHeadModule` (float32; dynamic number of RoIs).

    Raises:
        EngineError: the detector has no mask head or the conversion failed (one line naming the first cause).
    """
    import openvino as ov

    roi_head = getattr(detector, 'roi_head', None)
    head = getattr(roi_head, 'mask_head', None)
    if head is None:
        raise EngineError(f'engine openvino: {type(detector).__name__} has no mask head to convert')
    channels = int(head.in_channels)
    size = tuple(int(s) for s in roi_head.mask_roi_extractor.roi_layers[0].output_size)
    module = MaskHeadModule(head).eval()
    try:
        with torch.no_grad():
            return ov.convert_model(module, example_input=torch.zeros(2, channels, *size),
                                    input=[ov.PartialShape([-1, channels, *size])])
    except Exception as err:  # noqa: BLE001 -- the converter raises many types; all mean: cannot convert
        raise EngineError(f'engine openvino: cannot convert the mask head of {type(detector).__name__} '
                          f'({one_line(err, 160)})') from None


def _open_cache(folder: Optional[Path], key: dict) -> Optional[dict]:
    """The cache's manifest, a fresh one when it is missing, stale or damaged (its files removed); None when the
    folder cannot be made."""
    if folder is None:
        return None
    path = folder / 'cache.json'
    manifest = None
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
            if not isinstance(manifest, dict) or not isinstance(manifest.get('files'), dict):
                raise ValueError('not a cache manifest')
        except (OSError, ValueError) as err:
            _log(f'engine cache {folder}: damaged ({one_line(err, 120)}); rebuilding it')
            manifest = None
        else:
            if manifest.get('key') != key:
                changed = sorted(k for k in key if (manifest.get('key') or {}).get(k) != key[k])
                _log(f'engine cache {folder}: stale ({", ".join(changed)} changed); rebuilding it')
                manifest = None
    if manifest is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for old in [f for part in PARTS for f in folder.glob(f'{part}*')]:
                old.unlink()
            manifest = dict(key=key, files={})
            write_json(path, manifest, indent=2)
        except OSError as err:
            _log(f'engine cache {folder}: cannot be written ({one_line(err, 120)}); running uncached')
            return None
    return manifest


def _read_checked(folder: Path, manifest: dict, name: str) -> Optional[bytes]:
    """A cached file's bytes if its digest matches the manifest; None (and one line if it was there) otherwise."""
    path = folder / name
    want = manifest['files'].get(name)
    if want is None or not path.is_file():
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != want:
        _log(f'engine cache {path}: damaged (digest differs); rebuilding it')
        manifest['files'].pop(name, None)
        return None
    return data


def _read_ir(folder: Path, manifest: dict, name: str) -> Any:
    """The cached IR ``name.xml/.bin`` as an ``openvino.Model``, None when missing or damaged (one line)."""
    import openvino as ov

    xml = _read_checked(folder, manifest, f'{name}.xml')
    weights = _read_checked(folder, manifest, f'{name}.bin')
    if xml is None or weights is None:
        return None
    try:
        return ov.Core().read_model(model=xml.decode('utf-8'), weights=ov.Tensor(_as_u8(weights)))
    except Exception as err:  # noqa: BLE001 -- a file OpenVINO cannot read: rebuild it
        _log(f'engine cache {folder / name}.xml: damaged ({one_line(err, 120)}); rebuilding it')
        return None


def _as_u8(data: bytes) -> Any:
    import numpy as np

    return np.frombuffer(data, dtype=np.uint8).copy()


def _write_ir(folder: Path, manifest: dict, name: str, model: Any) -> None:
    """Save ``model`` as ``name.xml/.bin`` in the cache (weights kept float32) and record their digests."""
    import openvino as ov

    try:
        tmp = folder / f'.{name}.{os.getpid()}'
        ov.save_model(model, str(tmp) + '.xml', compress_to_fp16=False)
        for ext in ('.bin', '.xml'):
            data = Path(str(tmp) + ext).read_bytes()
            atomic_write_bytes(folder / f'{name}{ext}', data)
            Path(str(tmp) + ext).unlink()
            manifest['files'][f'{name}{ext}'] = hashlib.sha256(data).hexdigest()
        write_json(folder / 'cache.json', manifest, indent=2)
    except OSError as err:
        _log(f'engine cache {folder}: not written ({one_line(err, 120)}); running uncached')


def save_quantized(checkpoint: str, detector: nn.Module, model: Any, part: str = 'trunk') -> Path:
    """Store a quantised part (``openvino.Model`` from NNCF; ``part`` ``'trunk'`` or ``'mask_head'``) as
    ``<part>-int8`` in ``checkpoint``'s cache; its compiled blobs are dropped (compiled again at the next run)."""
    if part not in PARTS:
        raise ValueError(f'part must be one of {", ".join(PARTS)}, not {part!r}')
    folder = cache_dir_of(checkpoint)
    manifest = _open_cache(folder, cache_key(detector, checkpoint))
    if manifest is None:
        raise EngineError(f'{folder}: the engine cache cannot be written')
    name = f'{part}-int8'
    for old in list(manifest['files']):
        if old.startswith(name) and old.endswith('.blob'):
            manifest['files'].pop(old)
            (folder / old).unlink(missing_ok=True)
    if part == 'mask_head':
        manifest.setdefault('parts', {})['mask_head'] = mask_head_key(detector)
    _write_ir(folder, manifest, name, model)
    return folder / f'{name}.xml'


def install_trunk_engine(detector: nn.Module, engine: Optional[OpenVINOTrunk]) -> nn.Module:
    """Make ``detector`` (a ``FastMaskRCNN``) run its trunk through ``engine`` in CPU inference (None: torch again).

    ``extract_feat`` returns the engine's FPN features and keeps its RPN outputs for the RPN head's next forward on
    those features; every other call (training, autograd, CUDA, other features) runs the torch modules.
    """
    detector.__dict__['_trunk_engine'] = engine
    detector.__dict__.pop('_trunk_rpn', None)
    rpn = detector.rpn_head
    if engine is not None and not getattr(rpn.forward, '_mmcell_trunk', False):
        inner = rpn.forward

        def forward(self: nn.Module, feats: Any, *args: Any, **kwargs: Any) -> Any:
            stash = detector.__dict__.pop('_trunk_rpn', None)
            if stash is not None and len(feats) and stash[0] is feats[0]:
                return stash[1]
            return inner(feats, *args, **kwargs)

        forward._mmcell_trunk = True  # type: ignore[attr-defined]
        rpn.forward = types.MethodType(forward, rpn)
    return detector


def install_mask_head_engine(detector: nn.Module, engine: Optional[OpenVINOMaskHead]) -> nn.Module:
    """Make ``detector``'s mask head (a ``FastFCNMaskHead``) run through ``engine`` in CPU inference (None: torch
    again); training, autograd and CUDA run the torch modules."""
    detector.roi_head.mask_head.__dict__['_mask_engine'] = engine
    return detector
