"""Per-module ranges for ``torch.profiler`` tables (the precision benchmarks' profiles)."""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch.profiler import record_function


def label_modules(model: torch.nn.Module, names: Sequence[str]) -> List[torch.utils.hooks.RemovableHandle]:
    """Forward pre/post hooks that open a profiler range ``# <name>`` around each named submodule's forward.

    Names the model does not have are skipped. Remove the returned handles when the profile is taken.
    """
    handles = []
    for name in names:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue
        ranges: list = []

        def pre(mod, args, _name=name, _ranges=ranges):
            rf = record_function(f'# {_name}')
            rf.__enter__()
            _ranges.append(rf)

        def post(mod, args, out, _ranges=ranges):
            _ranges.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles
