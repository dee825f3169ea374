"""Numbers about a data set: instance counts and sizes per class, and real-tissue statistics (nuclei per mm^2,
areas, touching nuclei, stain densities, texture, edges, noise) to compare real and synthetic images.

Everything works from the parsed (cached) annotations, whose masks are compact RLE: an image's instances are
painted into one int32 label map instead of one full-size bitmap per cell, so a 772-cell image stays cheap. The
pictures of these numbers are drawn by :mod:`mmcell.visualization`.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import ndimage
from scipy.signal import convolve2d
from scipy.spatial import cKDTree
from tqdm import tqdm

from mmcell.datasets.image_io import read_image
from mmcell.datasets.metainfo import CELL_METAINFO, NUM_CLASSES
from mmcell.datasets.stain import rgb_to_hed
from mmcell.structures.label_image import instance_label_map


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


def statistics_class_names(stats: dict) -> List[str]:
    """Names of the classes counted in ``stats`` (the HW3 names, then ``class5``, ``class6``, ...)."""
    names = list(CELL_METAINFO['classes'])
    return names + [f'class{k}' for k in range(len(names) + 1, len(stats['count']) + 1)]


def format_statistics(stats: dict) -> str:
    """The statistics as a plain-text table."""
    names = statistics_class_names(stats)
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


# ------------------------------------------------------------------------------------------ tissue statistics
# Rows of the real-vs-synthetic table: (key, label, format). Densities are HED optical densities (rgb_to_hed).
TISSUE_ROWS = (
    ('images', 'images', '{:.0f}'),
    ('side_px', 'image side, median (px)', '{:.0f}'),
    ('nuclei_per_mm2', 'annotated nuclei per mm^2', '{:.0f}'),
    ('area_um2_p10', 'nucleus area p10 (um^2)', '{:.1f}'),
    ('area_um2_median', 'nucleus area median (um^2)', '{:.1f}'),
    ('area_um2_p90', 'nucleus area p90 (um^2)', '{:.1f}'),
    ('nuclear_fraction', 'nuclear area fraction', '{:.1%}'),
    ('touching', 'nuclei touching another', '{:.1%}'),
    ('nn_um', 'nearest-neighbour distance, median (um)', '{:.1f}'),
    ('nucleus_h', 'nucleus haematoxylin OD, median', '{:.3f}'),
    ('nucleus_e', 'nucleus eosin OD, median', '{:.3f}'),
    ('nucleus_d', 'nucleus DAB OD (residual), median', '{:.3f}'),
    ('background_h', 'background haematoxylin OD, median', '{:.3f}'),
    ('background_e', 'background eosin OD, median', '{:.3f}'),
    ('background_d', 'background DAB OD (residual), median', '{:.3f}'),
    ('chromatin', 'chromatin texture: H OD std inside a nucleus', '{:.3f}'),
    ('nucleus_rgb', 'nucleus RGB, median', '{}'),
    ('background_rgb', 'background RGB, median', '{}'),
    ('edge_contrast', 'edge contrast: grey outside - inside ring', '{:.1f}'),
    ('edge_width_px', 'edge width: contrast / max grey gradient (px)', '{:.2f}'),
    ('noise', 'noise sigma, grey levels (Immerkaer)', '{:.2f}'),
)


def _noise_sigma(grey: np.ndarray) -> float:
    """Immerkaer's (1996) fast noise estimate: the response to a Laplacian difference mask that cancels edges."""

    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    resp = np.abs(convolve2d(grey, mask, mode='valid'))
    return float(np.sqrt(np.pi / 2) * resp.mean() / 6)


def _image_tissue_measures(rgb: np.ndarray, labels: np.ndarray, mpp: float, max_nuclei: int = 400,
                           rng: Optional[np.random.Generator] = None) -> dict:
    """Pixel and per-nucleus measures of one image (``labels``: 0 background, n > 0 one nucleus)."""

    n = int(labels.max())
    fg = labels > 0
    hed = rgb_to_hed(rgb)
    grey = rgb.astype(np.float32).mean(axis=2)
    out: dict = dict(pixels=labels.size, count=n, fg_pixels=int(fg.sum()))
    # touching: a 4-neighbour pair of pixels in two different nuclei
    touch = np.zeros(n + 1, bool)
    for a, b in ((labels[1:], labels[:-1]), (labels[:, 1:], labels[:, :-1])):
        pair = (a != b) & (a > 0) & (b > 0)
        touch[a[pair]] = True
        touch[b[pair]] = True
    index = np.arange(1, n + 1)
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index) if n else np.zeros(0)
    present = areas > 0
    out['areas_um2'] = (areas[present] * mpp ** 2).tolist()
    out['touching'] = int(touch[1:][present].sum())
    if n >= 2:
        centres = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, index[present]))
        dist, _ = cKDTree(centres).query(centres, k=2)
        out['nn_um'] = (dist[:, 1] * mpp).tolist()
    else:
        out['nn_um'] = []
    # stain densities and colours on subsampled pixels (medians need no more)
    rng = rng or np.random.default_rng(0)
    for name, sel in (('nucleus', fg), ('background', ~fg)):
        flat = np.flatnonzero(sel)
        pick = flat if flat.size <= 50_000 else rng.choice(flat, 50_000, replace=False)
        out[f'{name}_hed'] = hed.reshape(-1, 3)[pick]
        out[f'{name}_rgb'] = rgb.reshape(-1, 3)[pick]
    # chromatin texture: std of H density inside eroded nuclei; edge profile on a ring 2 px in and 2 px out
    inner = ndimage.grey_erosion(labels, size=5)
    inner = np.where(inner == labels, labels, 0)
    outer_ring = ndimage.grey_dilation(labels, size=5) * (labels == 0)
    inner_ring = labels * (inner == 0)
    h = hed[..., 0]
    ids = index[present]
    if max_nuclei and ids.size > max_nuclei:
        ids = np.sort(rng.choice(ids, max_nuclei, replace=False))
    with np.errstate(invalid='ignore', divide='ignore'):  # nuclei eroded away are NaN and dropped below
        std = np.sqrt(np.maximum(ndimage.variance(h, inner, ids), 0)) if ids.size else np.zeros(0)
    big = ndimage.sum_labels(np.ones_like(inner), inner, ids) >= 15 if ids.size else np.zeros(0, bool)
    out['chromatin'] = np.asarray(std)[big].tolist()
    grad = np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1)) / 8  # grey levels per px
    contrast, width = [], []
    if ids.size:
        with np.errstate(invalid='ignore', divide='ignore'):  # no ring pixels: NaN, skipped below
            g_out = ndimage.mean(grey, outer_ring, ids)
            g_in = ndimage.mean(grey, inner_ring, ids)
        g_max = ndimage.maximum(grad, np.where(labels > 0, labels, outer_ring), ids)
        for o, i, m in zip(np.atleast_1d(g_out), np.atleast_1d(g_in), np.atleast_1d(g_max)):
            if np.isfinite(o) and np.isfinite(i) and m > 0:
                contrast.append(o - i)
                width.append((o - i) / m)
    out['edge_contrast'], out['edge_width_px'] = contrast, width
    out['noise'] = _noise_sigma(grey)
    return out


def tissue_statistics(samples: Sequence[dict], mpp: float, progress: bool = False) -> dict:
    """Measure what makes H&E nuclei look the way they do, in physical units, on a parsed data set.

    The same measures run on a real and a synthetic data root (the same HW3 layout) tell how far the synthetic
    generator is from real tissue: density and size of nuclei (per mm^2, um^2), crowding (area fraction, touching
    neighbours, nearest-neighbour distance), stain densities of nuclei and background in HED space
    (:func:`mmcell.datasets.stain.rgb_to_hed`), chromatin texture, edge contrast and width (blur)
    and sensor noise.

    Args:
        samples: parsed training folders (:func:`mmcell.datasets.hw3_annotations.load_train_annotations`); all
            classes count as nuclei.
        mpp: microns per pixel of the images (MoNuSeg and MoNuSAC at 40x: about 0.25).
        progress: show a progress bar.

    Returns:
        one float (or RGB triple) per key of :data:`TISSUE_ROWS`. Unannotated nuclei (e.g. cut by the border)
        count as background.
    """
    if mpp <= 0:
        raise ValueError(f'mpp must be > 0, got {mpp}')
    rng = np.random.default_rng(0)
    per_image = []
    iterator = samples
    if progress:
        iterator = tqdm(samples, desc='tissue statistics', unit='img')
    for s in iterator:
        labels = instance_label_map(s['instances'], s['height'], s['width'])
        per_image.append(_image_tissue_measures(read_image(s['img_path']), labels, mpp, rng=rng))
        per_image[-1]['side'] = float(np.sqrt(s['height'] * s['width']))

    def cat(key: str) -> np.ndarray:
        parts = [np.asarray(m[key], np.float64) for m in per_image if len(m[key])]
        return np.concatenate(parts) if parts else np.zeros((0,))

    def med(values: np.ndarray) -> float:
        return float(np.median(values)) if values.size else float('nan')

    pixels = sum(m['pixels'] for m in per_image)
    count = sum(m['count'] for m in per_image)
    areas = cat('areas_um2')
    nucleus_hed = cat('nucleus_hed').reshape(-1, 3)
    background_hed = cat('background_hed').reshape(-1, 3)
    stats = dict(
        images=len(per_image),
        side_px=med(np.array([m['side'] for m in per_image])),
        nuclei_per_mm2=count / max(pixels * mpp ** 2 * 1e-6, 1e-12),
        area_um2_p10=float(np.percentile(areas, 10)) if areas.size else float('nan'),
        area_um2_median=med(areas),
        area_um2_p90=float(np.percentile(areas, 90)) if areas.size else float('nan'),
        nuclear_fraction=sum(m['fg_pixels'] for m in per_image) / max(pixels, 1),
        touching=sum(m['touching'] for m in per_image) / max(count, 1),
        nn_um=med(cat('nn_um')),
        chromatin=med(cat('chromatin')),
        edge_contrast=med(cat('edge_contrast')),
        edge_width_px=med(cat('edge_width_px')),
        noise=med(np.array([m['noise'] for m in per_image])),
    )
    for name, hed in (('nucleus', nucleus_hed), ('background', background_hed)):
        for k, stain in enumerate('hed'):
            stats[f'{name}_{stain}'] = med(hed[:, k]) if hed.size else float('nan')
        rgb = cat(f'{name}_rgb').reshape(-1, 3)
        stats[f'{name}_rgb'] = tuple(int(v) for v in np.median(rgb, axis=0)) if rgb.size else ()
    return stats


def format_tissue_comparison(columns: Dict[str, dict]) -> str:
    """A Markdown table: one row per :data:`TISSUE_ROWS` measure, one column per named statistics dict."""
    names = list(columns)
    lines = ['| measure | ' + ' | '.join(names) + ' |', '|---|' + '---:|' * len(names)]
    for key, label, fmt in TISSUE_ROWS:
        cells = []
        for name in names:
            value = columns[name].get(key)
            cells.append('-' if value is None else fmt.format(value))
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
