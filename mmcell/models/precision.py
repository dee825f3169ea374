"""bfloat16 autocast for a two-stage detector, with float32 at the numerically sensitive boundaries.

CPU autocast runs convolutions and linear layers in bfloat16 and returns bfloat16 tensors. What follows them in a
Mask R-CNN must not: mmcv's RoIAlign has no bfloat16 kernel, box deltas decoded in bfloat16 lose ~1/256 of a box,
and the losses want float32 predictions. So the outputs of the modules listed in :data:`FP32_OUTPUTS` (the FPN and
the three heads) are cast back to float32 as they leave the module; RoIAlign, box decoding, NMS, mask pasting and
the losses then run in float32 as before.

- Training: :class:`mmcell.engine.BF16AutocastOptimWrapper` opens the autocast region around the whole step and
  calls :func:`cast_outputs_to_fp32` once.
- Inference: :func:`autocast_forward` wraps one module's forward (the fast Mask R-CNN wraps its backbone + neck,
  RPN head and box head; its mask head has its own ``precision``), so TTA and tiled inference, which call the
  detector's pieces one by one, get the same precision.
"""
from __future__ import annotations

import types
from typing import Any, List, Sequence

import torch
from torch import nn

#: submodules of a two-stage detector whose outputs go back to float32 (FPN outputs feed RoIAlign; head outputs
#: feed box decoding, NMS, mask pasting and the losses)
FP32_OUTPUTS = ('neck', 'rpn_head', 'roi_head.bbox_head', 'roi_head.mask_head')


def outputs_to_fp32(out: Any) -> Any:
    """``out`` (a tensor or nested tuples/lists/dicts of them) with low-precision float tensors as float32."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out
    if isinstance(out, tuple) and hasattr(out, '_fields'):  # namedtuple
        return type(out)(*(outputs_to_fp32(o) for o in out))
    if isinstance(out, (list, tuple)):
        return type(out)(outputs_to_fp32(o) for o in out)
    if isinstance(out, dict):
        return type(out)((k, outputs_to_fp32(v)) for k, v in out.items())
    return out


def _fp32_hook(module: nn.Module, args: Any, out: Any) -> Any:
    return outputs_to_fp32(out)


def cast_outputs_to_fp32(model: nn.Module, names: Sequence[str] = FP32_OUTPUTS) -> List[str]:
    """Make each submodule of ``model`` named in ``names`` (those it has) return float32 (a forward hook).

    Idempotent; the hooks change no parameter and no state_dict key. Returns the names hooked.
    """
    hooked = []
    for name in names:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue
        if not any(h is _fp32_hook for h in module._forward_hooks.values()):
            module.register_forward_hook(_fp32_hook)
        hooked.append(name)
    return hooked


def autocast_forward(module: nn.Module, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Run ``module``'s forward under CPU autocast (``dtype``) with float32 outputs, in CPU inference only.

    Training, autograd and CUDA run the original forward. The wrapper is an instance attribute (no new parameter
    or state_dict key) and survives ``copy.deepcopy``.
    """
    module.forward = types.MethodType(_autocast_forward_of(type(module).forward, dtype), module)
    return module


def _autocast_forward_of(forward: Any, dtype: torch.dtype) -> Any:
    def autocast_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if first is None and args and isinstance(args[0], (list, tuple)) and args[0]:
            first = args[0][0]
        if self.training or torch.is_grad_enabled() or (first is not None and first.is_cuda):
            return forward(self, *args, **kwargs)
        with torch.autocast('cpu', dtype=dtype):
            out = forward(self, *args, **kwargs)
        return outputs_to_fp32(out)

    return autocast_forward
