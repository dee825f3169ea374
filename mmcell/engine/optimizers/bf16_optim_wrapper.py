"""bfloat16 mixed-precision training on CPU (mmengine 0.10's ``AmpOptimWrapper`` asserts a GPU)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from mmcell.models.precision import FP32_OUTPUTS, cast_outputs_to_fp32


@OPTIM_WRAPPERS.register_module()
class BF16AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast(device_type, dtype=torch.bfloat16)``.

    The config's ``precision='bf16'`` (``tools/train.py --precision bf16``, or ``--amp`` on a CPU) selects it
    (:func:`mmcell.utils.prepare_launch`). Parameters, gradients and optimizer state stay float32; convolutions and
    linear layers compute in bfloat16; the outputs of ``fp32_outputs`` (the FPN and the heads) are cast back to
    float32, so RoIAlign, box decoding and the losses run in float32 as before. No loss scaling: bfloat16 has
    float32's exponent range, so gradients do not underflow the way float16's do. Checkpoints are those of
    ``OptimWrapper`` (resume across precisions works).

    Args:
        device_type: autocast device, ``'cpu'`` (default) or ``'cuda'``.
        fp32_outputs: submodule names whose outputs go back to float32 (those the model lacks are skipped).
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``clip_grad``, ``accumulative_counts``).
    """

    def __init__(self, device_type: str = 'cpu', fp32_outputs: Optional[Sequence[str]] = FP32_OUTPUTS,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.device_type = device_type
        self.fp32_outputs = tuple(fp32_outputs or ())
        self._hooked: set = set()

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        inner = getattr(model, 'module', model)  # (MMDistributedDataParallel)
        if id(inner) not in self._hooked:
            cast_outputs_to_fp32(inner, self.fp32_outputs)
            self._hooked.add(id(inner))
        with super().optim_context(model), torch.autocast(self.device_type, dtype=torch.bfloat16):
            yield
