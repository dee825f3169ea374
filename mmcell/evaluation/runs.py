"""Reading a training work dir (dumped config, scalar logs): shared by compare_runs.py and plot_curves.py."""
from __future__ import annotations

import glob
import json
import os.path as osp
from typing import List

from mmcell.utils.errors import InputError


class RunError(InputError):
    """A work dir that cannot be read (message: '<path>: <problem>')."""


def find_config(work_dir: str) -> str:
    configs = sorted(glob.glob(osp.join(work_dir, '*.py')))
    if not configs:
        raise RunError(f'{work_dir}: no dumped config (*.py); is this a tools/train.py work dir?')
    return configs[0]


def read_scalars(work_dir: str) -> List[dict]:
    """All scalar records of the work dir's runs, oldest run first (a resumed run adds a second timestamp)."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not paths:
        raise RunError(f'{work_dir}: no */vis_data/scalars.json log found')
    records = []
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise RunError(f'{path}: line {n} is not JSON ({err.msg})') from None
    return records
