"""Registry and launcher set-up shared by ``tools/*.py`` and the tests."""
from __future__ import annotations

import argparse
import copy
import datetime
import os
from typing import Any, Optional, Tuple, Union

import torch
import torch.distributed as torch_dist
from mmdet.utils import register_all_modules as register_mmdet
from mmengine.config import Config, DictAction

from mmcell.utils.checkpoint import TRUST_ENV

from .errors import InputError, one_line
from .precision import resolve_precision


class ConfigError(InputError):
    """A config file that cannot be loaded (syntax error, a name it cannot resolve): one line naming it."""


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register mmdet's modules and mmcell's (which register into the mmdet registries)."""

    register_mmdet(init_default_scope=init_default_scope)
    import mmcell  # noqa: F401  (importing registers datasets, transforms, hooks, metrics, models)


def load_config(config: Union[str, Config], cfg_options: Optional[dict] = None,
                data_root: Optional[str] = None) -> Config:
    """A private copy of ``config`` (a path or a Config) with ``cfg_options`` merged and the data root moved.

    The one place tools and APIs read configs, so a missing file is one line naming it.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        if not os.path.isfile(config):
            raise FileNotFoundError(f'{config}: config file not found')
        try:
            cfg = Config.fromfile(config)
        except Exception as err:  # mmengine re-raises the config's own SyntaxError, NameError, ImportError...
            raise ConfigError(f'{config}: not a usable config ({type(err).__name__}: {one_line(err, limit=200)})') \
                from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root is not None:
        set_data_root(cfg, data_root)
    return cfg


def check_device(device: str) -> str:
    """``device`` if this machine has it; else :class:`InputError` saying which devices exist (``--device``)."""
    name = str(device)
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f'--device {name}: not a device name (use cpu or cuda:N)') from None
    if dev.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise InputError(f'--device {name}: this machine has no CUDA device (torch '
                             f'{torch.__version__.split("+")[0]} sees none); use --device cpu')
        if dev.index is not None and dev.index >= count:
            raise InputError(f'--device {name}: this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}')
    elif dev.type != 'cpu':
        raise InputError(f'--device {name}: mmcell runs on cpu or cuda:N')
    return name


def add_runner_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags tools/train.py and tools/test.py share with mmdet's tools."""
    parser.add_argument('--work-dir', help='where logs, checkpoints and metrics go (default work_dirs/<config>)')
    parser.add_argument('--data-root', help='data set folder (rewrites every path under the config data_root)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. train_cfg.max_epochs=2)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load checkpoints (load_from, --resume, test) that weights_only refuses; they can run '
                             'code, so only files you trust (also MMCELL_TRUST_CHECKPOINTS=1)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def load_runner_config(args: argparse.Namespace) -> Config:
    """Config for a Runner from :func:`add_runner_args` flags (work_dir precedence: CLI > config > file name)."""

    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if getattr(args, 'trust_checkpoint', False):
        os.environ[TRUST_ENV] = '1'  # the Runner loads load_from / resume through mmcell's registered loader
    register_all_modules()
    try:
        cfg = load_config(args.config, args.cfg_options, args.data_root)
    except (FileNotFoundError, InputError) as err:  # tools: one line, no traceback
        raise SystemExit(one_line(err)) from None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = os.path.join('./work_dirs', os.path.splitext(os.path.basename(args.config))[0])
    return cfg


def prepare_launch(cfg: Config, launcher: str = 'none', amp: bool = False,
                   precision: Optional[str] = None, training: bool = True) -> Config:
    """Adapt ``cfg`` to the machine before the Runner is built.

    - Precision (:mod:`mmcell.utils.precision`): ``precision`` (``--precision``), else the config's ``precision``
      key, else ``'fp32'`` -- training changes precision only when a flag or config asks, since it changes the
      weights (``'auto'``: bf16 where the CPU has native bfloat16 units). ``'bf16'`` swaps the config's
      ``OptimWrapper`` for :class:`mmcell.engine.BF16AutocastOptimWrapper`; one log line says what was chosen.
    - ``--amp``: on CUDA mmengine's ``AmpOptimWrapper`` (float16, dynamic loss scale); on a CPU it means
      ``precision='bf16'``.
    - ``training=False`` (``tools/test.py``): precision is the inference builder's business, nothing here.
    - Distributed on a machine without CUDA (torchrun + gloo): mmengine's ``_init_dist_pytorch`` calls
      ``torch.cuda.set_device`` unconditionally, so we create the gloo process group here (the Runner skips
      ``init_dist`` when a group exists), and DDP must get ``device_ids=None`` for CPU modules.
    """
    cuda = torch.cuda.is_available()
    if amp and cuda:
        if precision not in (None, 'fp32'):
            raise SystemExit(f'--amp on CUDA is float16 AmpOptimWrapper; --precision {precision} is a CPU path')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    elif training:
        if amp:
            if precision not in (None, 'bf16', 'auto'):
                raise SystemExit(f'--amp on a CPU means --precision bf16, not --precision {precision}')
            precision = 'bf16'
        requested = precision or cfg.get('precision') or 'fp32'
        try:
            chosen = resolve_precision(requested, 'cuda' if cuda else 'cpu', training=True)
        except ValueError as err:
            raise SystemExit(f'precision: {err}') from None
        if chosen == 'bf16':
            wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
            if wrapper_type not in ('OptimWrapper', 'BF16AutocastOptimWrapper'):
                raise SystemExit(f'precision bf16 replaces OptimWrapper; this config uses {wrapper_type}')
            cfg.optim_wrapper.type = 'BF16AutocastOptimWrapper'
    if launcher != 'none' and not torch.cuda.is_available():
        env_cfg = dict(cfg.get('env_cfg') or {})
        dist_cfg = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
        cfg.env_cfg = dict(env_cfg, dist_cfg=dist_cfg)
        wrapper = dict(cfg.get('model_wrapper_cfg') or {})
        wrapper.setdefault('type', 'MMDistributedDataParallel')
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
        if launcher == 'pytorch':
            init_dist_from_env(timeout_s=int(dist_cfg.get('timeout', 1800)))
    return cfg


def init_dist_from_env(timeout_s: int = 1800) -> Tuple[int, int]:
    """Join the torchrun process group (``RANK`` / ``WORLD_SIZE`` in the environment): nccl with CUDA, else gloo.

    mmengine's ``_init_dist_pytorch`` calls ``torch.cuda.set_device`` unconditionally, so CPU machines need this.
    Returns ``(rank, world_size)``; ``(0, 1)`` outside torchrun (no ``RANK`` in the environment).
    """
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if 'RANK' not in os.environ:
        return 0, 1
    if not torch_dist.is_initialized():
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        if backend == 'nccl':
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', '0')))
        torch_dist.init_process_group(backend=backend, rank=int(os.environ['RANK']), world_size=world,
                                      timeout=datetime.timedelta(seconds=timeout_s))
    return torch_dist.get_rank(), torch_dist.get_world_size()


def set_data_root(cfg: Config, data_root: str) -> Config:
    """Point every path of ``cfg`` that lies under its ``data_root`` at ``data_root`` instead.

    mmengine resolves ``ann_file=data_root + '...'`` when the config is parsed, so ``--cfg-options data_root=X``
    alone would leave the dataloaders and evaluators on the old path. Configs in ``configs/`` keep ``data_root``
    as a top-level variable; every string starting with it (data roots, annotation files, id files) is rewritten.
    """
    old = cfg.get('data_root')
    if not old:
        raise SystemExit(f'{cfg.filename}: --data-root needs a top-level data_root variable in the config')
    new = data_root.rstrip('/') + ('/' if str(old).endswith('/') else '')

    def rewrite(node: Any) -> Any:
        if isinstance(node, str):
            return new + node[len(old):] if node.startswith(old) else node
        if isinstance(node, dict):
            return type(node)({k: rewrite(v) for k, v in node.items()})
        if isinstance(node, (list, tuple)):
            return type(node)(rewrite(v) for v in node)
        return node

    for key in list(cfg.keys()):
        if key != 'data_root':
            cfg[key] = rewrite(cfg[key])
    cfg.data_root = new
    return cfg
