"""Reading checkpoints safely and checking that they fit a model (the one home of both rules).

- **Trust.** A ``.pth`` is a pickle: loading it without ``weights_only=True`` can run any code it names.
  :func:`mmcell.utils.compat.torch_load_checkpoint` (mmengine's registered loader) loads with
  ``weights_only=True`` and an allow-list of exactly the types mmengine writes; anything else is refused with
  :class:`CheckpointError` unless the user trusts checkpoints explicitly: ``--trust-checkpoint`` on the tools,
  ``trust_checkpoint=True`` in the APIs (:func:`trust_checkpoints`), or ``MMCELL_TRUST_CHECKPOINTS=1``.
- **Fit.** Inference must never run on random weights: :func:`load_inference_checkpoint` refuses a file that is
  not a checkpoint, is truncated, has no (or an empty) ``state_dict``, lacks weights of the model, or was trained
  for another number of classes. Training from ``load_from`` keeps mmengine's partial loading (a head of another
  class count is expected there) and :func:`partial_load_summary` says in one line what was skipped.

Every error is a :class:`CheckpointError` whose message is one line: ``"<file>: <problem>"``.
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import re
import threading
from typing import Any, Iterator, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict

from .errors import InputError

TRUST_ENV = 'MMCELL_TRUST_CHECKPOINTS'
TRUST_HINT = f'pass --trust-checkpoint (API: trust_checkpoint=True) or set {TRUST_ENV}=1 if you trust its source'

_TRUST = threading.local()


class CheckpointError(InputError):
    """A checkpoint that cannot be used: ``"<file>: <problem>"`` on one line."""


def checkpoints_trusted() -> bool:
    """Whether full-pickle checkpoints may be loaded (``trust_checkpoints`` block, else the env variable)."""
    local = getattr(_TRUST, 'value', None)
    if local is not None:
        return local
    return os.environ.get(TRUST_ENV, '').strip().lower() in ('1', 'true', 'yes')


@contextlib.contextmanager
def trust_checkpoints(enabled: bool = True) -> Iterator[None]:
    """Inside the block, checkpoints that need a full unpickle load (``enabled=True``) or follow the env var."""
    previous = getattr(_TRUST, 'value', None)
    _TRUST.value = True if enabled else previous
    try:
        yield
    finally:
        _TRUST.value = previous


def describe_load_error(source: str, err: BaseException) -> CheckpointError:
    """Turn what ``torch.load`` raises on a bad file into one line naming the file and the problem."""
    text = str(err)
    if isinstance(err, EOFError) or (isinstance(err, RuntimeError) and 'central directory' in text):
        problem = 'truncated or corrupt checkpoint (the file ends early; download or copy it again)'
    elif isinstance(err, RuntimeError) and 'PytorchStreamReader' in text:
        problem = 'corrupt checkpoint (the zip archive inside cannot be read; download or copy it again)'
    elif 'Weights only load failed' in text:
        found = re.search(r'GLOBAL ([\w.]+)', text) or re.search(r'(Unsupported operand \S+)', text)
        detail = f'it names {found.group(1)}' if found and found.re.pattern.startswith('GLOBAL') else \
            (found.group(1) if found else 'content a weights-only load does not allow')
        problem = (f'refused: not a plain weights file ({detail}; unpickling it could run code from the file); '
                   f'{TRUST_HINT}')
    else:
        problem = 'not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy torch pickle)'
    return CheckpointError(f'{source}: {problem}')


def read_checkpoint(path: str, map_location: Any = 'cpu') -> dict:
    """Load a checkpoint through mmengine's registered loaders (local, http, torchvision) with mmcell's rules.

    Raises:
        CheckpointError: missing file, not a checkpoint, truncated, refused (untrusted full pickle), not a dict.
    """

    if '://' not in str(path) and not osp.isfile(path):
        raise CheckpointError(f'{path}: checkpoint file not found')
    try:
        ckpt = CheckpointLoader.load_checkpoint(str(path), map_location=map_location)
    except CheckpointError:
        raise
    except FileNotFoundError as err:
        raise CheckpointError(str(err)) from None
    except Exception as err:  # noqa: BLE001  (torch raises KeyError/RuntimeError/EOFError/... on bad files)
        raise describe_load_error(str(path), err) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: not an mmengine checkpoint (holds a {type(ckpt).__name__}, not a dict)')
    return ckpt


def state_dict_of(ckpt: dict, path: str) -> dict:
    """The model weights of a loaded checkpoint (``state_dict``, or a bare dict of tensors), ``module.`` removed."""
    if 'state_dict' in ckpt:
        state_dict = ckpt['state_dict']
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state_dict = ckpt  # a bare state dict (torchvision / torch.save(model.state_dict()))
    else:
        keys = ', '.join(sorted(map(str, ckpt))[:5]) or 'none'
        raise CheckpointError(f'{path}: no state_dict in the checkpoint (top-level keys: {keys})')
    if not isinstance(state_dict, dict) or not state_dict:
        raise CheckpointError(f'{path}: the state_dict is empty (no model weights)')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}


def detector_of(model: torch.nn.Module) -> torch.nn.Module:
    """The detector inside wrappers (DDP, TTA, tiling, label saving): what a checkpoint's weights belong to."""
    while hasattr(model, 'module') and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


def compare_state_dict(model: torch.nn.Module, state_dict: dict) -> tuple:
    """``(missing, unexpected, mismatched)`` keys of ``state_dict`` against ``model`` (mismatched: key, ckpt
    shape, model shape)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
                  if k in own and hasattr(v, 'shape') and tuple(v.shape) != tuple(own[k].shape)]
    return missing, unexpected, mismatched


def _num_classes_of(model: torch.nn.Module) -> Optional[int]:
    try:
        return int(model.roi_head.bbox_head.num_classes)
    except (AttributeError, TypeError):
        return None


def check_fits(model: torch.nn.Module, state_dict: dict, checkpoint: str, config: str) -> None:
    """Refuse weights that would leave any part of ``model`` random (mmengine would only warn).

    Raises:
        CheckpointError: another class count, other tensor shapes, or model weights missing from the file.
    """
    missing, _, mismatched = compare_state_dict(model, state_dict)
    for key, ckpt_shape, model_shape in mismatched:
        if key.endswith('fc_cls.weight'):  # Shared2FCBBoxHead: num_classes + 1 outputs (background)
            num_classes = _num_classes_of(model)
            raise CheckpointError(
                f'{checkpoint}: trained for {ckpt_shape[0] - 1} classes but {config} has num_classes='
                f'{num_classes if num_classes is not None else model_shape[0] - 1}')
    if mismatched:
        key, ckpt_shape, model_shape = mismatched[0]
        raise CheckpointError(f'{checkpoint}: {key} has shape {ckpt_shape} but the model of {config} expects '
                              f'{model_shape} ({len(mismatched)} mismatched tensor(s))')
    if missing:
        raise CheckpointError(f'{checkpoint}: {len(missing)} of {len(model.state_dict())} weights of the model of '
                              f'{config} are missing (e.g. {missing[0]}); is it a checkpoint of this model?')


def load_inference_checkpoint(model: torch.nn.Module, checkpoint: str, config: str = 'the config',
                              trust: bool = False) -> dict:
    """Load ``checkpoint`` into ``model`` (or the detector inside its wrappers) for inference, all or nothing.

    Args:
        model: the built model (wrappers are looked through, see :func:`detector_of`).
        checkpoint: ``.pth`` path or URL.
        config: config name for messages.
        trust: allow a full unpickle (code in the file may run) when ``weights_only`` refuses the file.

    Returns:
        the checkpoint's ``meta`` dict (``{}`` when it has none).

    Raises:
        CheckpointError: one line naming the file and the problem.
    """

    with trust_checkpoints(trust):
        ckpt = read_checkpoint(checkpoint)
    state_dict = state_dict_of(ckpt, checkpoint)
    detector = detector_of(model)
    check_fits(detector, state_dict, checkpoint, config)
    load_state_dict(detector, state_dict, strict=False)
    meta = ckpt.get('meta')
    return meta if isinstance(meta, dict) else {}


def partial_load_summary(model: torch.nn.Module, state_dict: dict, checkpoint: str) -> str:
    """One line saying what ``load_from`` loaded and skipped (mmengine loads what fits and lists the rest)."""
    missing, unexpected, mismatched = compare_state_dict(detector_of(model), state_dict)
    skipped = len(missing)
    parts = [f'{checkpoint}: loaded {len(state_dict) - len(unexpected) - len(mismatched)} of '
             f'{len(detector_of(model).state_dict())} model tensors']
    if mismatched:
        parts.append(f'{len(mismatched)} skipped for another shape (e.g. {mismatched[0][0]} '
                     f'{mismatched[0][1]} vs {mismatched[0][2]})')
    if skipped:
        parts.append(f'{skipped} not in the file (e.g. {missing[0]})')
    if unexpected:
        parts.append(f'{len(unexpected)} in the file not in the model (e.g. {unexpected[0]})')
    if not (mismatched or skipped or unexpected):
        parts.append('all weights fit')
    return '; '.join(parts)
