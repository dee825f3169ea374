"""The precision switch reaches every route: train/test/predict flags, mmcell segment / segment-slide, the builder
with its TTA and tiling wrappers, and the test loop; bf16 costs at most a stated AP50 on the synthetic test split."""
from __future__ import annotations

import argparse
import re
import sys

import pytest

from mmcell import cli
from mmcell.apis import builder
from mmcell.utils.checkpoint import detector_of
from mmcell.utils.precision import resolve_precision
from tests.conftest import load_script, run_tool

pytest.importorskip('mmcv.ops')

#: bf16 inference may cost at most this much segm AP50 against fp32 (the issue's goal is 0.005 on real
#: validation data; on the 3 synthetic test images of a weakly trained model one instance moves AP50 by ~0.01)
AP50_TOLERANCE = 0.02


def _cli_args(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest='command')
    cli._segment_parser(sub)
    cli._segment_slide_parser(sub)
    return parser.parse_args(argv)


def test_every_tool_takes_the_flag():
    common = ['--precision', 'bf16']
    parsed = [
        load_script('tools/predict.py').parse_args(['c.py', 'w.pth', '--data-root', 'd', *common]),
        load_script('tools/test.py').parse_args(['c.py', 'w.pth', *common]),
        _cli_args(['segment', 'a.tif', '--config', 'c.py', '--checkpoint', 'w.pth', '--out', 'o', *common]),
        _cli_args(['segment-slide', 's.svs', '--config', 'c.py', '--checkpoint', 'w.pth', '--out', 'o', *common]),
    ]
    for args in parsed:
        assert builder.model_kwargs_of(args)['precision'] == 'bf16'
    assert 'precision' not in builder.model_kwargs_of(load_script('tools/test.py').parse_args(['c.py', 'w.pth']))
    assert load_script('tools/train.py').parse_args(['c.py', '--precision', 'bf16']).precision == 'bf16'
    with pytest.raises(SystemExit):  # int8 is inference only
        load_script('tools/train.py').parse_args(['c.py', '--precision', 'int8'])


@pytest.mark.parametrize('variant', [dict(), dict(tta=True), dict(tile=128)])
def test_the_builder_applies_it_under_every_wrapper(trained_quickstart, variant):
    for precision in ('bf16', 'fp32', None):
        model = builder.init_cell_model(trained_quickstart.config, trained_quickstart.checkpoint,
                                        precision=precision, **variant)
        det = detector_of(model)
        expected = precision or resolve_precision('auto', log=False)  # no flag, no config key: the hardware's
        assert det.precision == det.roi_head.mask_head.precision == model.cfg.precision == expected
        assert ('forward' in vars(det.rpn_head)) == (expected == 'bf16')


def test_no_fast_runs_fp32_only(trained_quickstart):
    model = builder.init_cell_model(trained_quickstart.config, trained_quickstart.checkpoint, fast=False)
    assert type(model).__name__ == 'MaskRCNN' and model.cfg.precision == 'fp32'
    with pytest.raises(ValueError, match='needs the fast Mask R-CNN'):
        builder.init_cell_model(trained_quickstart.config, trained_quickstart.checkpoint, fast=False,
                                precision='bf16')


def test_config_key_is_the_default(trained_quickstart):
    from mmengine.config import Config

    cfg = Config.fromfile(trained_quickstart.config)
    cfg.precision = 'fp32'
    assert detector_of(builder.init_cell_model(cfg, trained_quickstart.checkpoint)).precision == 'fp32'
    assert detector_of(builder.init_cell_model(cfg, trained_quickstart.checkpoint, precision='bf16')).precision \
        == 'bf16'  # the flag wins


def _segm_ap50(trained_quickstart, precision: str, work_dir) -> float:
    proc = run_tool(sys.executable, 'tools/test.py', trained_quickstart.config, trained_quickstart.checkpoint,
                    '--data-root', trained_quickstart.data_root, '--precision', precision,
                    '--work-dir', str(work_dir / f'test_{precision}'))
    out = proc.stdout + proc.stderr
    assert f'precision: {precision} (asked' in out  # the one log line of the choice
    return float(re.search(r'coco/segm_mAP_50[:=] ?([0-9.]+)', out).group(1))


def test_bf16_test_loop_ap50_within_tolerance(trained_quickstart, tmp_path):
    fp32, bf16 = _segm_ap50(trained_quickstart, 'fp32', tmp_path), _segm_ap50(trained_quickstart, 'bf16', tmp_path)
    print(f'segm AP50 on the synthetic test split: fp32 {fp32:.4f}, bf16 {bf16:.4f}')
    # the real-data figure is in benchmarks/RESULTS.md
    # ("Inference precision": segm AP50 -0.0009 on the 3 MoNuSeg val tiles)
    assert abs(bf16 - fp32) <= AP50_TOLERANCE, (fp32, bf16)
