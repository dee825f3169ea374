"""PNG overlays of the HW3 ground truth: each nucleus' contour in its class colour, next to the plain image.

Usage::

    python tools/analysis_tools/browse_dataset.py DATA_ROOT --out DIR [--split all|train|val] [--max-images N]

Colours (RGB): epithelial crimson, lymphocyte blue, macrophage green, neutrophil orange. Small images are
upscaled (nearest) so that contours stay visible.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mmcell.datasets.hw3_annotations import load_train_annotations, split_samples
from mmcell.datasets.image_io import read_image
from mmcell.utils.errors import ToolArgumentParser, exit_on_bad_input
from mmcell.utils.fileio import atomic_write
from mmcell.visualization.plots import draw_gt_contours


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='GT contour overlays of an HW3 data set as PNGs')
    parser.add_argument('data_root', help='the HW3 release folder (holding train/)')
    parser.add_argument('--out', required=True, help='output folder for the PNGs')
    parser.add_argument('--split', default='all', choices=['all', 'train', 'val'])
    parser.add_argument('--val-ratio', type=float, default=0.2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-images', type=int, default=20, help='0 for all')
    parser.add_argument('--min-side', type=int, default=384, help='upscale until the short side reaches this')
    return parser.parse_args(argv)


def _imwrite(path: str, image: np.ndarray) -> None:
    if not cv2.imwrite(path, image):
        raise OSError(f'{path}: could not write PNG')


def _write_overlays(args: argparse.Namespace, out: Path) -> list:
    samples = load_train_annotations(args.data_root)
    keep = set(split_samples([s['name'] for s in samples], args.split, args.val_ratio, args.seed))
    samples = [s for s in samples if s['name'] in keep][:args.max_images or None]
    out.mkdir(parents=True, exist_ok=True)
    for s in tqdm(samples, desc='overlays', unit='img'):
        rgb = read_image(s['img_path'])
        scale = min(4, max(1, math.ceil(args.min_side / min(rgb.shape[:2]))))
        overlay = draw_gt_contours(rgb, s['instances'], scale=scale)
        plain = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
        gap = np.full((plain.shape[0], 8, 3), 255, np.uint8)
        panel = np.concatenate([plain, gap, overlay], axis=1)[..., ::-1]  # cv2 writes BGR
        atomic_write(out / f'{s["name"]}.png', lambda tmp, panel=panel: _imwrite(tmp, panel))
    return samples


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    samples = exit_on_bad_input(_write_overlays, args, out)
    n_inst = sum(len(s['instances']) for s in samples)
    print(f'{out}: {len(samples)} overlays ({n_inst} GT instances), left plain image, right contours by class')


if __name__ == '__main__':
    main()
