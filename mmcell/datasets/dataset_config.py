"""The one home that finds a config's own data set inside dataset wrappers.

A training set may be wrapped: mmengine's ``ClassBalancedDataset`` (repeat-factor sampling) or ``RepeatDataset``
hold their data set under ``dataset=``, a ``ConcatDataset`` (``--extra-train``) its parts under ``datasets=``. Code
that edits the data set itself (a cross-validation fold's ``val_names``, the extra training data's copy of it)
looks it up here, never at ``train_dataloader.dataset`` directly: a wrapper there would otherwise be edited instead
and the setting silently lost (a fold would train on its held-out tiles).
"""
from __future__ import annotations

from typing import Any, List, Mapping

from mmcell.utils.errors import InputError

#: the data set type a config's own training, validation and test sets are (the HW3 layout)
OWN_DATASET = 'CellInstanceDataset'
#: where dataset wrappers keep what they wrap: one data set, or a list of them (``ConcatDataset``)
WRAPPED_KEYS = ('dataset', 'datasets')


def dataset_type_name(dataset_cfg: Mapping) -> str:
    """The type of a data set config without its scope (``'mmcell.CellInstanceDataset'`` ->
    ``'CellInstanceDataset'``; a class given as the type: its name)."""
    kind = dataset_cfg.get('type', '')
    kind = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
    return kind.rsplit('.', 1)[-1]


def leaf_dataset_cfgs(dataset_cfg: Any) -> List[Mapping]:
    """The data set configs inside ``dataset_cfg`` that wrap nothing, depth first in order: ``[dataset_cfg]`` for a
    plain data set, else what its wrappers hold (``dataset=`` of ``ClassBalancedDataset`` / ``RepeatDataset`` /
    ``MultiImageMixDataset``, each of ``datasets=`` of a ``ConcatDataset``).

    The dicts themselves, not copies: setting a key of one sets it in the config.
    """
    if not isinstance(dataset_cfg, Mapping):
        return []
    inner = [dataset_cfg[key] for key in WRAPPED_KEYS if dataset_cfg.get(key) is not None]
    if not inner:
        return [dataset_cfg]
    leaves: List[Mapping] = []
    for held in inner:
        for part in (held if isinstance(held, (list, tuple)) else [held]):
            leaves.extend(leaf_dataset_cfgs(part))
    return leaves


def cell_dataset_cfg(dataset_cfg: Any, where: str = 'the data set') -> Mapping:
    """The one ``CellInstanceDataset`` config inside ``dataset_cfg``, wrappers looked through
    (:func:`leaf_dataset_cfgs`); the dict itself, so a change to it changes the config.

    Args:
        dataset_cfg: a dataloader's ``dataset``, plain or wrapped.
        where: names it in the error (e.g. ``'CFG: the training set'``).

    Raises:
        InputError: it holds no ``CellInstanceDataset``, or several (a ``ConcatDataset`` of two: which one is the
            config's own is not known): one line.
    """
    leaves = leaf_dataset_cfgs(dataset_cfg)
    found = [leaf for leaf in leaves if dataset_type_name(leaf) == OWN_DATASET]
    if len(found) != 1:
        outer = dataset_type_name(dataset_cfg) if isinstance(dataset_cfg, Mapping) else type(dataset_cfg).__name__
        kinds = ', '.join(dataset_type_name(leaf) or '?' for leaf in leaves) or 'nothing'
        raise InputError(f'{where} holds {len(found)} {OWN_DATASET} configs (a {outer or "dict"} of {kinds}); '
                         f'one is needed')
    return found[0]
