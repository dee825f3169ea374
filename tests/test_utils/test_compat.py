"""Checkpoints written by mmengine load on torch >= 2.6 through mmcell's registered loaders."""
import collections
import logging
import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

import mmcell  # noqa: F401  (applies the shims)
from mmcell.utils.checkpoint import TRUST_ENV, CheckpointError, trust_checkpoints
from mmcell.utils.compat import torch_load_checkpoint


def _mmengine_like_checkpoint() -> dict:
    """What mmengine's CheckpointHook writes: a real MessageHub state (its HistoryBuffers pickle bound methods)."""
    from mmengine.logging import MessageHub

    message_hub = MessageHub(name='compat-test')
    for loss in (1.5, 0.9):
        message_hub.update_scalar('train/loss', loss)
    message_hub.update_info('best_score', np.float64(0.61))
    hub = message_hub.state_dict()
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


@pytest.fixture
def mmengine_messages():
    """Messages logged through mmengine's current logger (it does not propagate to pytest's caplog)."""
    from mmengine.logging import MMLogger

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def test_registered_local_loader_restores_message_hub(tmp_path, mmengine_messages):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    ckpt = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert any('Loads checkpoint' in m for m in mmengine_messages)  # the handler sees mmengine's log
    assert not any('full pickle' in m for m in mmengine_messages)  # weights_only=True + the allow-list sufficed
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.current() == pytest.approx(0.9)
    assert buf.mean() == pytest.approx(1.2)  # the pickled statistics methods work
    assert ckpt['meta']['iter'] == 42 and ckpt['message_hub']['runtime_info']['best_score'] == pytest.approx(0.61)
    assert torch.equal(ckpt['state_dict']['w'], torch.arange(4.0))


class _Foreign:  # a type no allow-list knows: stands for checkpoints of other toolboxes
    def __init__(self, value):
        self.value = value


class _WritesMarker:
    """What a crafted checkpoint does: a ``__reduce__`` that runs a shell command when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_crafted_payload_is_refused_and_does_not_run(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / 'pwned'
    path = tmp_path / 'crafted.pth'
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': {'x': _WritesMarker(marker)}}, path)
    with pytest.raises(CheckpointError) as err:
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    message = str(err.value)
    assert not marker.exists(), 'the payload ran'
    assert '\n' not in message and str(path) in message
    assert 'system' in message and '--trust-checkpoint' in message and TRUST_ENV in message


def test_unknown_types_are_refused_unless_trusted(tmp_path, monkeypatch, mmengine_messages):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = tmp_path / 'foreign.pth'
    torch.save({'extra': _Foreign(5)}, path)
    with pytest.raises(CheckpointError, match='_Foreign'):
        torch_load_checkpoint(str(path), 'cpu', source=str(path))
    # the explicit opt-ins load an ordinary full-pickle checkpoint, with a warning naming the file
    with trust_checkpoints():
        assert torch_load_checkpoint(str(path), 'cpu', source=str(path))['extra'].value == 5
    assert any(str(path) in m and 'full pickle' in m for m in mmengine_messages)
    monkeypatch.setenv(TRUST_ENV, '1')
    assert CheckpointLoader.load_checkpoint(str(path), map_location='cpu')['extra'].value == 5


@pytest.mark.parametrize('content, problem', [
    (b'just some text\n', 'not a PyTorch checkpoint'),
    (b'', 'truncated or corrupt'),
    ('truncated', 'truncated or corrupt'),
])
def test_broken_files_are_one_line(tmp_path, content, problem):
    path = tmp_path / 'broken.pth'
    if content == 'truncated':
        torch.save(_mmengine_like_checkpoint(), path)
        content = path.read_bytes()[:len(path.read_bytes()) // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert problem in str(err.value) and str(path) in str(err.value) and '\n' not in str(err.value)


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


class _Payload:
    def __reduce__(self):  # what a crafted checkpoint would do: getattr on something that is not a HistoryBuffer
        return (getattr, ((), 'count'))


def test_getattr_is_only_served_for_history_buffers(tmp_path):
    path = tmp_path / 'crafted.pth'
    torch.save({'x': _Payload()}, path)
    from mmcell.utils.compat import _checkpoint_safe_globals

    with torch.serialization.safe_globals(_checkpoint_safe_globals()):
        with pytest.raises(Exception, match=r"getattr\(tuple, 'count'\) is not allowed"):
            torch.load(path, weights_only=True)
