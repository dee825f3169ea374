"""Looking at HW3 annotations: GT contour overlays and data set statistics (used by the analysis tools).

Everything works from the parsed (cached) annotations, whose masks are compact RLE: an image's instances are
painted into one int32 label map instead of one full-size bitmap per cell, so a 772-cell image stays cheap.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from ..utils.fileio import save_figure
from .hw3_format import NUM_CLASSES, PathLike
from .metainfo import CELL_METAINFO
from .rle import rle_runs


def instance_label_map(instances: Sequence[dict], height: int, width: int) -> np.ndarray:
    """(H, W) int32 map: 0 background, ``n + 1`` where instance ``n`` (its ``mask`` RLE) has pixels."""
    flat = np.zeros(height * width, np.int32)  # column-major, like COCO RLE
    for n, inst in enumerate(instances):
        starts, lengths = rle_runs(inst['mask'])
        for s, ln in zip(starts.tolist(), lengths.tolist()):
            flat[s:s + ln] = n + 1
    return flat.reshape(width, height).T


def contour_pixels(labels: np.ndarray) -> np.ndarray:
    """Bool map of instance pixels with a 4-neighbour of another label (touching cells get their own edges)."""
    edge = np.zeros(labels.shape, bool)
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge & (labels > 0)


def draw_gt_contours(rgb: np.ndarray, instances: Sequence[dict], scale: int = 1,
                     palette: Sequence[Sequence[int]] = CELL_METAINFO['palette']) -> np.ndarray:
    """RGB image (nearest-upscaled by ``scale``) with each instance's contour in its class colour.

    Args:
        rgb: (H, W, 3) uint8 image.
        instances: parsed instances (``class_id`` 1..4, ``mask`` RLE of size [H, W]).
        scale: integer upscaling so that contours of small nuclei stay visible.
        palette: RGB colour per class (class K -> ``palette[K - 1]``).
    """
    h, w = rgb.shape[:2]
    labels = instance_label_map(instances, h, w)
    if scale > 1:
        rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
        labels = np.repeat(np.repeat(labels, scale, axis=0), scale, axis=1)
    colours = np.array([(0, 0, 0)] + [tuple(palette[(i['class_id'] - 1) % len(palette)]) for i in instances],
                       np.uint8)
    out = rgb.copy()
    edge = contour_pixels(labels)
    out[edge] = colours[labels[edge]]
    return out


def dataset_statistics(samples: Sequence[dict]) -> dict:
    """Counts behind the data set table and plots.

    Args:
        samples: parsed training folders (see :func:`mmcell.datasets.hw3_annotations.load_train_annotations`).

    Returns:
        ``num_images``, ``heights``, ``widths``, ``instances_per_image``, and per class K (1..4, or up to the
        highest class present in a converted data set) lists/counts:
        ``areas[K]`` (pixels), ``count[K]``, ``border[K]`` (instances whose box touches the image border).
    """
    top = max([NUM_CLASSES] + [i['class_id'] for s in samples for i in s['instances']])
    areas: Dict[int, List[int]] = {k: [] for k in range(1, top + 1)}
    border = {k: 0 for k in areas}
    heights, widths, per_image = [], [], []
    for s in samples:
        heights.append(s['height'])
        widths.append(s['width'])
        per_image.append(len(s['instances']))
        for inst in s['instances']:
            k = inst['class_id']
            areas[k].append(int(inst['area']))
            x1, y1, x2, y2 = inst['bbox']
            border[k] += int(x1 <= 0 or y1 <= 0 or x2 >= s['width'] or y2 >= s['height'])
    return dict(num_images=len(samples), heights=heights, widths=widths, instances_per_image=per_image,
                areas=areas, count={k: len(v) for k, v in areas.items()}, border=border)


def _class_names(stats: dict) -> List[str]:
    names = list(CELL_METAINFO['classes'])
    return names + [f'class{k}' for k in range(len(names) + 1, len(stats['count']) + 1)]


def format_statistics(stats: dict) -> str:
    """The statistics as a plain-text table."""
    names = _class_names(stats)
    h, w, n = np.array(stats['heights']), np.array(stats['widths']), np.array(stats['instances_per_image'])
    lines = [f'images: {stats["num_images"]}']
    if stats['num_images']:
        lines += [f'height: min {h.min()}  median {np.median(h):g}  max {h.max()}',
                  f'width:  min {w.min()}  median {np.median(w):g}  max {w.max()}',
                  f'instances per image: min {n.min()}  median {np.median(n):g}  max {n.max()}  total {n.sum()}']
    lines.append(f'{"class":<16}{"instances":>10}{"share":>8}{"area med":>10}{"area p5-p95":>14}{"border":>8}')
    total = max(1, sum(stats['count'].values()))
    for k in sorted(stats['count']):
        a = np.array(stats['areas'][k])
        cnt = stats['count'][k]
        area = f'{np.median(a):10.0f}{f"{np.percentile(a, 5):.0f}-{np.percentile(a, 95):.0f}":>14}' if cnt else \
            f'{"-":>10}{"-":>14}'
        brd = f'{stats["border"][k] / cnt:8.1%}' if cnt else f'{"-":>8}'
        lines.append(f'{f"{k} {names[k - 1]}":<16}{cnt:>10}{cnt / total:8.1%}{area}{brd}')
    all_border = sum(stats['border'].values())
    lines.append(f'GT instances touching the image border: {all_border}/{total} ({all_border / total:.1%})')
    return '\n'.join(lines)


def plot_statistics(stats: dict, out_file: PathLike) -> Path:
    """Save a 2x2 PNG: image sizes, instances per class, instance-area histogram per class, border fraction."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = _class_names(stats)
    palette = CELL_METAINFO['palette']
    colours = [np.array(palette[k % len(palette)]) / 255 for k in range(len(names))]
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    ax[0, 0].scatter(stats['widths'], stats['heights'], s=12)
    ax[0, 0].set(title=f'image sizes ({stats["num_images"]} images)', xlabel='width (px)', ylabel='height (px)')
    ks = sorted(stats['count'])
    ax[0, 1].bar(names, [stats['count'][k] for k in ks], color=colours)
    ax[0, 1].set(title='instances per class', ylabel='instances')
    all_areas = [a for k in ks for a in stats['areas'][k]]
    if all_areas:
        bins = np.geomspace(max(1, min(all_areas)), max(all_areas) + 1, 30)
        for k in ks:
            if stats['areas'][k]:
                ax[1, 0].hist(stats['areas'][k], bins=bins, histtype='step', lw=2, color=colours[k - 1],
                              label=names[k - 1])
        ax[1, 0].set_xscale('log')
        ax[1, 0].legend()
    ax[1, 0].set(title='instance size', xlabel='area (px, log)', ylabel='instances')
    frac = [stats['border'][k] / stats['count'][k] if stats['count'][k] else 0 for k in ks]
    ax[1, 1].bar(names, frac, color=colours)
    ax[1, 1].set(title='fraction of GT instances touching the image border', ylim=(0, 1))
    fig.tight_layout()
    save_figure(fig, out_file, dpi=90)
    plt.close(fig)
    return Path(out_file)
