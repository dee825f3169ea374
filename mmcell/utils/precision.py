"""The one precision switch: ``precision = 'fp32' | 'bf16' | 'int8'`` (config key, ``--precision`` on the tools).

What each value means is decided here, once, for training and for inference:

- ``'fp32'``: everything in float32, the results of mmcell before the switch existed (bit for bit).
- ``'bf16'``: bfloat16 autocast for the convolutions and linear layers (backbone, FPN, RPN, box and mask heads);
  losses, box decoding, NMS, RoIAlign inputs and mask pasting stay float32 (see ``mmcell.models.precision``).
  Training through :class:`mmcell.engine.BF16AutocastOptimWrapper` (no loss scaling: bfloat16 has float32's
  exponent range).
- ``'int8'`` (inference only): the fast mask head in int8 (static quantisation calibrated on the first RoI batch),
  the rest float32; with ``--engine openvino`` the OpenVINO trunk (backbone, FPN, RPN head) and mask head in int8
  (``tools/misc/quantize.py``), the torch box head float32.
- ``'int8-bf16'`` (inference only, ``--engine openvino``): the OpenVINO int8 trunk and mask head with the torch box
  head in bfloat16 autocast, as ``'bf16'`` runs it; RoIAlign, NMS and pasting float32. (A cache without a quantised
  mask head runs the torch mask head in the route's head precision, one log line.)
- ``'auto'`` (or no value), chosen by measurement (``benchmarks/RESULTS.md``, "Training precision" and "Inference
  precision"): **training** in ``'bf16'`` where the CPU has native bfloat16 units (AVX512-BF16 or AMX-BF16: a recipe
  step 1.32x faster, 1.88x with the fast RoIAlign, on AVX512-BF16 without AMX); **inference** in ``'bf16'`` on the
  same units (on AVX512-BF16 without AMX, with the fast RoI extractor: 1.53x per MoNuSeg tile with a trained
  recipe model, segm AP50 -0.0007; the 0.90x per slide of issue 20 was before the fast RoI extractor); on CUDA
  ``'fp32'``. int8 (OpenVINO's int8 trunk: 1.33x there, below torch bf16) and int8-bf16 (that trunk with bf16
  heads: 1.01x and 1.12x of torch bf16 per tile in two runs, AP50 -0.001; "int8 trunk + bf16 heads"; with the int8
  mask head 1.17x of torch bf16 per tile in one run, AP50 -0.0006; "int8 mask head") are never chosen by default:
  they need OpenVINO and a model quantised on the user's images.
  :func:`resolve_precision` logs one line saying what was chosen and why, so a result never depends on a silent
  fallback.
"""
from __future__ import annotations

import platform
from typing import Optional

import torch
from mmengine.logging import print_log

PRECISIONS = ('fp32', 'bf16', 'int8', 'int8-bf16')
#: the precisions whose torch parts run in bfloat16 autocast
BF16_PARTS = ('bf16', 'int8-bf16')
#: what a flag or config key may say (``auto``: the hardware decides, see :func:`resolve_precision`)
PRECISION_CHOICES = ('auto', *PRECISIONS)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for log lines and benchmark records."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_matrix_units() -> dict:
    """Which low-precision units this CPU has, as torch's dispatcher sees them.

    Returns:
        ``dict(avx512_bf16=..., amx=..., vnni=...)`` (bools): AVX512-BF16 dot products, AMX tiles
        (AMX-BF16/INT8), VNNI int8 dot products.
    """
    def probe(name: str) -> bool:
        fn = getattr(torch.cpu, name, None)
        try:
            return bool(fn()) if fn is not None else False
        except RuntimeError:
            return False

    return dict(avx512_bf16=probe('_is_avx512_bf16_supported'), amx=probe('_is_amx_tile_supported'),
                vnni=probe('_is_vnni_supported'))


def native_bf16(device: str = 'cpu') -> bool:
    """True where bfloat16 convolutions run on native units (AVX512-BF16 or AMX) of ``device``'s CPU."""
    if not str(device).startswith('cpu'):
        return False
    units = cpu_matrix_units()
    return units['avx512_bf16'] or units['amx']


def describe_units() -> str:
    """``'AMD EPYC: avx512_bf16 vnni, no amx'``: the units behind a precision choice, for one log line."""
    units = cpu_matrix_units()
    have = [k for k, v in units.items() if v]
    lack = [k for k, v in units.items() if not v]
    return f"{cpu_name()}: {' '.join(have) or 'no bf16/int8 units'}" + (f", no {' '.join(lack)}" if lack else '')


def resolve_precision(requested: Optional[str], device: str = 'cpu', training: bool = False,
                      log: bool = True) -> str:
    """The precision to run: ``requested`` if explicit, else the hardware's choice; one log line says which.

    Args:
        requested: ``'fp32'``, ``'bf16'``, ``'int8'``, ``'int8-bf16'``, ``'auto'`` or None (= ``'auto'``).
        device: where the model runs (``'cpu'``, ``'cuda:0'``).
        training: int8 and int8-bf16 are inference only (``'auto'`` picks the same for training and inference).
        log: write the one line (mmengine's current logger, else ``logging``).

    Raises:
        ValueError: an unknown name, int8 for training, or bf16/int8 asked for a CUDA device (mmcell's low
            precisions are CPU paths; CUDA training has ``--amp``).
    """
    name = 'auto' if requested is None else str(requested).lower()
    if name not in PRECISION_CHOICES:
        raise ValueError(f'precision must be one of {", ".join(PRECISION_CHOICES)}, not {requested!r}')
    if training and name.startswith('int8'):
        raise ValueError(f'precision {name} is for inference only; train in fp32 or bf16')
    on_cpu = str(device).startswith('cpu')
    if name == 'auto':
        chosen = 'bf16' if on_cpu and native_bf16(device) else 'fp32'
        why = (describe_units() if on_cpu else f'{device}: the low precisions are CPU paths')
        line = f'precision: {chosen} (auto; {why})'
    else:
        if not on_cpu and name != 'fp32':
            raise ValueError(f'precision {name}: a CPU path; on {device} use fp32 (training: --amp)')
        chosen = name
        line = f'precision: {chosen} (asked; {describe_units() if on_cpu else device})'
        if chosen in BF16_PARTS and not native_bf16(device):
            line += ' -- no native bf16 units: emulated, expect it to be slower than fp32'
    if log:
        _log(line)
    return chosen


def _log(line: str) -> None:
    print_log(line, logger='current')  # the run's log under a Runner, else mmengine's default logger
