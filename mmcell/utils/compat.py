"""Compatibility fixes for running mmengine 0.10.7 / mmdet 3.3.0 on modern torch and numpy.

Every fix lives here, is applied once by ``import mmcell`` and names the upstream problem it works around.
Nothing here touches process-wide settings such as ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import warnings
from typing import Any

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader

from mmcell.utils.checkpoint import checkpoints_trusted, describe_load_error

_APPLIED = False


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """The ``getattr`` a pickled ``HistoryBuffer`` needs, and nothing more.

    A HistoryBuffer pickles its ``statistics_methods`` as ``getattr(HistoryBuffer, 'mean')``-style functions. Allowing
    the real ``builtins.getattr`` would let a crafted checkpoint walk to any callable, so only public attributes of
    the HistoryBuffer class and its instances are served.
    """

    if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and not name.startswith('_'):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({type(obj).__name__}, {name!r}) is not allowed in a checkpoint')


def _checkpoint_safe_globals() -> list:
    """Types that mmengine writes into a checkpoint besides tensors.

    The message hub stores ``HistoryBuffer`` objects holding numpy arrays, and ``meta`` may hold numpy scalars.
    """

    safe: list = [HistoryBuffer, np.ndarray, np.dtype, (_history_buffer_getattr, 'builtins.getattr')]
    multiarray = getattr(np, '_core', getattr(np, 'core', None)).multiarray
    safe += [multiarray._reconstruct, multiarray.scalar]
    safe += [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith('DType')]
    return safe


def torch_load_checkpoint(f: Any, map_location: Any = None, source: str | None = None) -> Any:
    """``torch.load`` for mmengine checkpoints on torch >= 2.6, without running code from the file.

    torch 2.6 made ``weights_only=True`` the default, and mmengine 0.10.7 calls ``torch.load`` without the
    argument, so ``--resume`` and ``load_from`` fail with an ``UnpicklingError`` on the message hub
    (open-mmlab/mmengine#1615). We load with ``weights_only=True`` and an allow-list of exactly the types mmengine
    itself writes. A file that needs more (another toolbox's pickle, or a crafted file) is refused with one line
    naming it, unless checkpoints are trusted explicitly (:func:`mmcell.utils.checkpoint.checkpoints_trusted`:
    ``--trust-checkpoint`` or ``MMCELL_TRUST_CHECKPOINTS=1``); then it is loaded as torch < 2.6 did, with a warning.

    Raises:
        CheckpointError: refused, not a checkpoint, truncated (one line naming ``source``).
    """

    source = source or str(f)
    try:
        with torch.serialization.safe_globals(_checkpoint_safe_globals()):
            return torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refusal = describe_load_error(source, err)
        if 'Weights only load failed' not in str(err) or not checkpoints_trusted():
            raise refusal from None
    except Exception as err:  # noqa: BLE001  (KeyError/RuntimeError/EOFError... for files that are no checkpoint)
        raise describe_load_error(source, err) from None
    if hasattr(f, 'seek'):
        f.seek(0)
    print_log(f'{source}: not loadable with weights_only=True; loading it as a full pickle because checkpoints '
              'are trusted (--trust-checkpoint / MMCELL_TRUST_CHECKPOINTS)', logger='current', level=30)
    return torch.load(f, map_location=map_location, weights_only=False)


def _load_from_local(filename: str, map_location: Any = None) -> Any:
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename}: checkpoint file not found')
    return torch_load_checkpoint(filename, map_location, source=filename)


def _download_checkpoint(url: str, model_dir: str | None, progress: bool) -> str:
    """Fetch ``url`` into torch's hub cache (the directory mmengine uses too) and return the local path."""
    from torch.hub import download_url_to_file, get_dir  # deferred: only for downloads

    cache_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    cached = osp.join(cache_dir, osp.basename(url.split('?')[0]))
    if osp.isfile(cached):
        return cached
    os.makedirs(cache_dir, exist_ok=True)
    try:
        download_url_to_file(url, cached, progress=progress)
    except Exception as err:  # URLError, socket and HTTP errors all mean "these weights are not reachable"
        raise RuntimeError(
            f'cannot download pretrained weights {url} ({type(err).__name__}). Offline? Copy the file to '
            f'{cached}, or pass a local file (--cfg-options load_from=PATH or '
            'model.backbone.init_cfg.checkpoint=PATH), or train from scratch with a *scratch* config') from None
    return cached


def _load_from_http(filename: str, map_location: Any = None, model_dir: str | None = None,
                    progress: bool = False) -> Any:
    """Like mmengine's ``load_from_http`` (rank 0 downloads first), with one clear error line when offline."""

    rank, world_size = get_dist_info()
    if rank == 0:
        cached = _download_checkpoint(filename, model_dir, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            cached = _download_checkpoint(filename, model_dir, progress)
    return torch_load_checkpoint(cached, map_location, source=cached)


# torchvision's ImageNet (V1) weights, so that ``torchvision://NAME`` in configs copied from mmdet works without
# torchvision installed (mmengine's loader imports torchvision just to look these URLs up).
TORCHVISION_URLS = {
    name: f'https://download.pytorch.org/models/{name}-{digest}.pth' for name, digest in {
        'resnet18': 'f37072fd', 'resnet34': 'b627a593', 'resnet50': '0676ba61', 'resnet101': '63fe2227',
        'resnet152': '394f9c45', 'resnext50_32x4d': '7cdf4587', 'resnext101_32x8d': '8ba56ff5'}.items()}


def _load_from_torchvision(filename: str, map_location: Any = None) -> Any:
    name = filename[len('torchvision://'):]
    if name not in TORCHVISION_URLS:
        raise ValueError(f'{filename}: unknown torchvision model; use its https URL or a local file instead '
                         f'(known: {", ".join(sorted(TORCHVISION_URLS))})')
    return _load_from_http(TORCHVISION_URLS[name], map_location=map_location)


def apply_compat() -> None:
    """Apply every fix once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    # mmengine/utils/package_utils.py imports pkg_resources, deprecated since setuptools 81 (we pin <82 for the
    # mmcv build); the warning is about mmengine, not about anything a user can act on.
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
    # Local paths are matched by the '' prefix; http(s) by its own prefixes (mmengine/runner/checkpoint.py).
    CheckpointLoader.register_scheme(prefixes='', force=True)(_load_from_local)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), force=True)(_load_from_http)
    CheckpointLoader.register_scheme(prefixes='torchvision://', force=True)(_load_from_torchvision)
    _APPLIED = True
