"""The inference engine switch: OpenVINO runs the convolutional trunk of a fast Mask R-CNN (``--engine openvino``).

The trunk is backbone + FPN + RPN head (the convolutions of a whole tile): it is exported from the torch modules with
``openvino.convert_model`` (dynamic batch, height and width), compiled by OpenVINO's CPU plugin
(once: dynamic shapes; fused conv + GroupNorm + ReLU graphs in oneDNN) and run in place of
``extract_feat`` + the RPN head's forward. RoIAlign, the box and mask heads, NMS, mask pasting and RLE stay in
mmcell's fast torch path (:mod:`mmcell.models.fast_mask_rcnn`), so TTA, tiles and slides run the same code.

Cache (``<checkpoint>.openvino/`` beside the checkpoint): ``trunk.xml/.bin`` (the exported IR), one compiled blob per
precision (``trunk-fp32.blob``) and ``cache.json``, which holds the key (checkpoint SHA-256, the trunk's
architecture, OpenVINO version, export format) and each file's SHA-256. A cache whose key differs
is stale, a file whose digest differs (or that OpenVINO cannot read) is damaged: either is rebuilt with one log line
saying so. The cache holds OpenVINO IR and compiled blobs only: reading it never runs Python code. A checkpoint
folder that cannot be written runs without a cache (one line).
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


def cache_dir_of(checkpoint: Optional[str]) -> Optional[Path]:
    """Where the engine cache of ``checkpoint`` lives: ``<checkpoint>.openvino/`` beside it (None: no checkpoint)."""
    return None if checkpoint is None else Path(f'{checkpoint}.openvino')


class OpenVINOTrunk:
    """The trunk compiled by OpenVINO: ``trunk(x) -> (feats, (cls_scores, bbox_preds))`` as the torch modules give.

    Build with :meth:`from_detector`. Compiled once (dynamic shapes; kept in memory and, with a cache folder, as a
    blob on disk); runs on ``torch.get_num_threads()`` threads.

    Args:
        model: the exported ``openvino.Model`` (dynamic batch, height, width).
        num_levels: FPN levels (the model's outputs are ``3 * num_levels`` tensors).
        precision: ``'fp32'``, ``'bf16'``, ``'int8'`` or ``'int8-bf16'`` (int8*: ``model`` is the quantised IR).
        cache: the cache folder (None: nothing on disk).
        manifest: the cache's ``cache.json`` contents (key and digests), updated as blobs are added.
    """

    def __init__(self, model: Any, num_levels: int, precision: str = 'fp32', cache: Optional[Path] = None,
                 manifest: Optional[dict] = None) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.model = model
        self.num_levels = num_levels
        self.precision = precision
        self.cache = cache
        self.manifest = manifest if manifest is not None else {}
        self._compiled: Any = None

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
        key = dict(trunk_format=TRUNK_FORMAT, openvino=version, architecture=architecture_digest(detector),
                   checkpoint_sha256=_sha256(Path(checkpoint)) if checkpoint else weights_digest(detector))
        manifest = _open_cache(folder, key)
        if folder is None or manifest is None:
            folder = None
            manifest = dict(key=key, files={})
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
    def compiled(self) -> Any:
        """The model compiled for this precision (from memory, the cache, or compiled now).

        One compiled model serves every input shape (dynamic batch, height, width): on AVX512 without AMX,
        OpenVINO 2026.4's CPU plugin crashed compiling the f32 trunk reshaped to some small static shapes
        (256x320), and static shapes measured no faster at 1024x1024 (0.302 vs 0.312 s f32, 0.069 vs 0.072 s bf16).
        """
        if self._compiled is not None:
            return self._compiled
        config = self.compile_config()
        name = f'trunk-{self.blob_tag}.blob'
        compiled = None
        if self.cache is not None:
            data = _read_checked(self.cache, self.manifest, name)
            if data is not None:
                try:
                    compiled = self.core.import_model(data, 'CPU', config)
                except Exception as err:  # noqa: BLE001 -- any failure of a cached blob means: rebuild it
                    _log(f'engine cache {self.cache / name}: damaged ({one_line(err, 120)}); rebuilding it')
        if compiled is None:
            compiled = self.core.compile_model(self.nhwc_features(), 'CPU', config)
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

    def nhwc_features(self) -> Any:
        """The model with its FPN outputs in NHWC (channels_last): mmcell's RoIAlign gathers one C-vector per
        sample point, ~10x faster from channels_last features (63 vs 6 ms for the box RoIs of a 1250x1250 tile)."""
        from openvino.preprocess import PrePostProcessor

        ppp = PrePostProcessor(self.model.clone())
        for i in range(self.num_levels):
            ppp.output(i).model().set_layout('NCHW')
            ppp.output(i).tensor().set_layout('NHWC')
        return ppp.build()

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

    def __call__(self, x: Tensor) -> Tuple[Tuple[Tensor, ...], Tuple[List[Tensor], List[Tensor]]]:
        with record_function('# openvino trunk'):
            out = self.compiled()(x.detach().float().contiguous().numpy()).to_tuple()  # copies: ours to keep
        n = self.num_levels
        outs = [torch.from_numpy(o) for o in out]
        feats = tuple(o.permute(0, 3, 1, 2) for o in outs[:n])  # NCHW shape, channels_last memory
        return feats, (outs[n:2 * n], outs[2 * n:3 * n])


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
            for old in folder.glob('trunk*'):
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


def save_quantized_trunk(checkpoint: str, detector: nn.Module, model: Any) -> Path:
    """Store a quantised trunk (``openvino.Model`` from NNCF) as ``trunk-int8`` in ``checkpoint``'s cache."""
    folder = cache_dir_of(checkpoint)
    key = dict(trunk_format=TRUNK_FORMAT, openvino=openvino_version(), architecture=architecture_digest(detector),
               checkpoint_sha256=_sha256(Path(checkpoint)))
    manifest = _open_cache(folder, key)
    if manifest is None:
        raise EngineError(f'{folder}: the engine cache cannot be written')
    for old in list(manifest['files']):
        if old.startswith('trunk-int8') and old.endswith('.blob'):
            manifest['files'].pop(old)
            (folder / old).unlink(missing_ok=True)
    _write_ir(folder, manifest, 'trunk-int8', model)
    return folder / 'trunk-int8.xml'


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
