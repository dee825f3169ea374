"""The one precision switch: what 'auto' picks on which hardware, what is refused, how train.py gets it."""
import pytest
import torch
from mmengine.config import Config

from mmcell.utils import precision as prec
from mmcell.utils import prepare_launch

NO_UNITS = dict(avx512_bf16=False, amx=False, vnni=False)
BF16_UNITS = dict(avx512_bf16=True, amx=False, vnni=True)


@pytest.fixture
def log_lines(monkeypatch):
    lines = []
    monkeypatch.setattr(prec, '_log', lines.append)
    return lines


def _units(monkeypatch, units):
    monkeypatch.setattr(prec, 'cpu_matrix_units', lambda: dict(units))


@pytest.mark.parametrize('units, inference, training', [(NO_UNITS, 'fp32', 'fp32'), (BF16_UNITS, 'bf16', 'bf16'),
                                                          (dict(NO_UNITS, amx=True), 'bf16', 'bf16')])
def test_auto_follows_the_cpu_units_with_one_log_line(monkeypatch, log_lines, units, inference, training):
    """Training and inference go bf16 on any native bf16 unit (training 1.3-1.9x; inference 1.53x per tile on
    AVX512-BF16 without AMX); fp32 without the units and on CUDA."""
    _units(monkeypatch, units)
    assert prec.resolve_precision('auto', 'cpu') == inference
    assert prec.resolve_precision(None, 'cpu', training=True) == training
    assert len(log_lines) == 2
    assert log_lines[0].startswith(f'precision: {inference} (auto;')
    assert log_lines[1].startswith(f'precision: {training} (auto;')
    assert prec.resolve_precision('auto', 'cuda:0') == 'fp32'  # low precisions are CPU paths


def test_explicit_choices_and_refusals(monkeypatch, log_lines):
    _units(monkeypatch, NO_UNITS)
    assert prec.resolve_precision('fp32', 'cpu') == 'fp32'
    assert prec.resolve_precision('BF16', 'cpu') == 'bf16'  # asked: runs as asked, and says it is emulated
    assert 'emulated' in log_lines[-1]
    assert prec.resolve_precision('int8', 'cpu') == 'int8'
    with pytest.raises(ValueError, match='inference only'):
        prec.resolve_precision('int8', 'cpu', training=True)
    with pytest.raises(ValueError, match='one of'):
        prec.resolve_precision('fp16', 'cpu')
    with pytest.raises(ValueError, match='CPU path'):
        prec.resolve_precision('bf16', 'cuda:0')


def test_the_units_and_cpu_name_are_read():
    units = prec.cpu_matrix_units()
    assert set(units) == {'avx512_bf16', 'amx', 'vnni'} and all(isinstance(v, bool) for v in units.values())
    assert prec.cpu_name() and prec.describe_units().startswith(prec.cpu_name())


def _config(tmp_path, extra: str = '') -> Config:
    path = tmp_path / 'cfg.py'
    path.write_text("optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))\n" + extra)
    return Config.fromfile(str(path))


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU behaviour')
def test_training_precision_reaches_the_optim_wrapper(tmp_path, monkeypatch, log_lines):
    _units(monkeypatch, BF16_UNITS)
    wrapper = 'BF16AutocastOptimWrapper'
    assert prepare_launch(_config(tmp_path), amp=True).optim_wrapper.type == wrapper  # --amp on a CPU = bf16
    assert prepare_launch(_config(tmp_path), precision='bf16').optim_wrapper.type == wrapper
    assert prepare_launch(_config(tmp_path, "precision = 'auto'\n")).optim_wrapper.type == wrapper
    # training changes precision only when asked: no key, no flag = fp32, the weights of before
    assert prepare_launch(_config(tmp_path)).optim_wrapper.type == 'OptimWrapper'
    assert prepare_launch(_config(tmp_path, "precision = 'bf16'\n"), precision='fp32').optim_wrapper.type == \
        'OptimWrapper'  # the flag wins over the config key
    assert prepare_launch(_config(tmp_path, "precision = 'bf16'\n"), training=False).optim_wrapper.type == \
        'OptimWrapper'  # tools/test.py: inference precision is the builder's
    _units(monkeypatch, NO_UNITS)
    assert prepare_launch(_config(tmp_path, "precision = 'auto'\n")).optim_wrapper.type == 'OptimWrapper'
    with pytest.raises(SystemExit, match='inference only'):
        prepare_launch(_config(tmp_path), precision='int8')
    with pytest.raises(SystemExit, match='--amp on a CPU means'):
        prepare_launch(_config(tmp_path), amp=True, precision='fp32')
    other = _config(tmp_path, "optim_wrapper = dict(type='AmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1))\n")
    with pytest.raises(SystemExit, match='replaces OptimWrapper'):
        prepare_launch(other, precision='bf16')
