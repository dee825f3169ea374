"""Checkpoints written by mmengine load on torch >= 2.6 through mmcell's registered loaders."""
import collections
import logging

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

import mmcell  # noqa: F401  (applies the shims)
from mmcell.utils.compat import torch_load_checkpoint


def _mmengine_like_checkpoint() -> dict:
    hub = {'log_scalars': {'train/loss': HistoryBuffer(np.array([1.5, 0.9]), np.array([1, 1]))},
           'runtime_info': {'epoch': 3, 'iter': 42, 'best_score': np.float64(0.61)}}
    return {'meta': {'epoch': 3, 'iter': 42, 'seed': np.int64(7)},
            'state_dict': collections.OrderedDict(w=torch.arange(4.0)),
            'message_hub': hub,
            'optimizer': {'state': {0: {'exp_avg': torch.ones(4)}}, 'param_groups': [{'lr': 1e-4, 'params': [0]}]}}


def test_plain_torch_load_rejects_mmengine_checkpoints(tmp_path):
    """The regression mmcell fixes: torch >= 2.6 refuses the message hub by default."""
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    if tuple(int(v) for v in torch.__version__.split('.')[:2]) < (2, 6):
        pytest.skip('torch < 2.6 loads full pickles by default')
    with pytest.raises(Exception, match='weights_only'):
        torch.load(path)


def test_registered_local_loader_restores_message_hub(tmp_path, caplog):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    with caplog.at_level(logging.WARNING):
        ckpt = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert 'full pickle' not in caplog.text  # loaded with weights_only=True + the allow-list
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.current() == pytest.approx(0.9)
    assert ckpt['meta']['iter'] == 42 and ckpt['message_hub']['runtime_info']['best_score'] == pytest.approx(0.61)
    assert torch.equal(ckpt['state_dict']['w'], torch.arange(4.0))


class _Foreign:  # a type no allow-list knows: stands for checkpoints of other toolboxes
    def __init__(self, value):
        self.value = value


def test_unknown_types_fall_back_with_a_warning(tmp_path):
    path = tmp_path / 'foreign.pth'
    torch.save({'extra': _Foreign(5)}, path)
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        ckpt = torch_load_checkpoint(str(path), 'cpu', source=str(path))
    finally:
        logger.removeHandler(handler)
    assert ckpt['extra'].value == 5
    assert any(str(path) in m and 'full pickle' in m for m in messages)


def test_http_weights_offline_fail_with_one_clear_line(tmp_path):
    url = 'http://127.0.0.1:9/weights/resnet50-unreachable.pth'  # discard port on loopback: refused at once
    with pytest.raises(RuntimeError) as err:
        CheckpointLoader.load_checkpoint(url, map_location='cpu')
    message = str(err.value)
    assert '\n' not in message
    assert url in message and 'resnet50-unreachable.pth' in message and 'load_from' in message


def test_missing_local_checkpoint_names_the_file(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        CheckpointLoader.load_checkpoint(str(missing))


def test_torchvision_scheme_needs_no_torchvision(monkeypatch):
    """``torchvision://resnet50`` maps to the https URL (here pointed at a refused loopback port)."""
    from mmcell.utils import compat

    monkeypatch.setitem(compat.TORCHVISION_URLS, 'resnet50', 'http://127.0.0.1:9/models/resnet50-0676ba61.pth')
    with pytest.raises(RuntimeError, match='resnet50-0676ba61.pth'):
        CheckpointLoader.load_checkpoint('torchvision://resnet50')
    with pytest.raises(ValueError, match='unknown torchvision model'):
        CheckpointLoader.load_checkpoint('torchvision://not_a_model')
