"""Realistic synthetic H&E nucleus data in the exact HW3 contest layout.

The real contest data cannot be shipped, so the demo and the tests use images drawn here. Rendering follows the
physics of bright-field staining (Beer-Lambert): each pixel has haematoxylin, eosin and residual DAB optical
densities, mixed to RGB with the one set of stain vectors of mmcell
(:func:`mmcell.datasets.stain.hed_to_rgb`). Each image draws a stain profile (nucleus, cytoplasm and
stroma densities) from the range measured on real 40x H&E, nuclei grow cell territories with textured
cytoplasm and membranes, stroma gets fibres, clear spaces stay white; optics blur and sensor noise come last.

Calibrated against real 40x tissue (MoNuSeg 2018 training images, 0.25 um/px) with
``tools/analysis_tools/compare_real_synthetic.py`` (:func:`mmcell.datasets.statistics.tissue_statistics`; the table
is in ``benchmarks/RESULTS.md``): at ``density=1`` about 6,000 annotated nuclei per mm^2 at 0.25 um/px, nucleus
areas of ~10-60 um^2, a nuclear area fraction near 20 %, a quarter of the nuclei touching a neighbour, chromatin
texture and stain densities in the real range.

Classes (file ``class<K>.tif``; frequencies follow the real imbalance, about 30 / 65 / 3 / 2 %):

1. epithelial: large, irregular, elongated, vesicular chromatin with a dark rim and nucleoli, in crowded sheets;
2. lymphocyte: small, round, dark and homogeneous, crowded;
3. macrophage: large oval / kidney-shaped, medium dark, foamy pale cytoplasm, few;
4. neutrophil: 2-4 dark lobes joined by thin strands in a lilac cytoplasm halo, few.

Nuclei may touch (no pixel gap, different ids). Ids are image-global, non-contiguous floats and exceed 255 in
images with enough cells. Cells cut by the image border are drawn but left unannotated unless ``keep_border``.
Each image has its own random stream seeded by ``(seed, split, index)``, so output is deterministic per seed.
"""
from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Dict, Tuple, Union

import cv2
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from mmcell.datasets.coco_gt import coco_ground_truth
from mmcell.datasets.hw3_format import class_map_instances, write_class_map
from mmcell.datasets.image_io import write_image_tif
from mmcell.datasets.metainfo import NUM_CLASSES
from mmcell.datasets.stain import hed_to_rgb
from mmcell.utils.fileio import write_json

# radius range (px at ~0.25 um/px), elongation range, shape irregularity, darkness relative to the image's nucleus
# haematoxylin density, rim (nuclear membrane), chromatin texture, vesicular (pale centre), share of the nuclei
CLASS_SPECS: Dict[int, dict] = {
    1: dict(name='epithelial', radius=(11.0, 18.0), elong=(1.2, 1.8), irregular=0.10, od=(0.7, 0.95),
            rim=0.5, chromatin=1.1, vesicular=0.35, weight=0.30),
    2: dict(name='lymphocyte', radius=(7.5, 10.0), elong=(1.0, 1.15), irregular=0.035, od=(1.1, 1.35),
            rim=0.1, chromatin=0.45, vesicular=0.0, weight=0.65),
    3: dict(name='macrophage', radius=(12.0, 17.0), elong=(1.4, 1.9), irregular=0.05, od=(0.9, 1.1),
            rim=0.35, chromatin=0.35, vesicular=0.0, weight=0.03),
    4: dict(name='neutrophil', radius=(4.5, 6.0), elong=(1.0, 1.2), irregular=0.05, od=(1.1, 1.35),
            rim=0.15, chromatin=0.45, vesicular=0.0, weight=0.02),
}
# Cytoplasm of each class: (reach from the nucleus in px, tone relative to the slide's cytoplasm density)
CYTOPLASM: Dict[int, tuple] = {1: ((8.0, 16.0), (0.45, 1.35)), 2: ((2.0, 4.0), (0.6, 1.1)),
                               3: ((10.0, 16.0), (0.25, 0.4)), 4: ((5.0, 8.0), (1.2, 1.6))}
# Annotated nuclei per million px at density 1 (real 40x H&E: ~380, i.e. ~6,000 per mm^2 at 0.25 um/px). Some
# placements are refused (too much overlap), so the drawn range sits a little above the target.
NUCLEI_PER_MPX = (400.0, 800.0)


# ------------------------------------------------------------------------------------------------- shapes
def _polar_shape(rng: np.random.Generator, radius: float, elong: float, irregular: float,
                 kidney: bool = False) -> np.ndarray:
    """Boolean mask of a nucleus: a rotated ellipse whose radius is modulated by low-order harmonics."""
    half = int(math.ceil(radius * math.sqrt(elong) * (1 + 3 * irregular) + 2))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    ca, sa = math.cos(angle), math.sin(angle)
    u = (xx * ca + yy * sa) / math.sqrt(elong)
    v = (-xx * sa + yy * ca) * math.sqrt(elong)
    theta = np.arctan2(v, u)
    r = np.hypot(u, v)
    bound = np.ones_like(r)
    for k in (2, 3, 4, 5):
        bound += rng.normal(0, irregular / k ** 0.5) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    mask = r <= radius * bound
    if kidney:  # bite a disc out of one long side: the indented, bean-shaped macrophage nucleus
        side = rng.choice([-1.0, 1.0])
        bite = np.hypot(u, v - side * radius * rng.uniform(1.0, 1.25)) <= radius * rng.uniform(0.45, 0.6)
        mask &= ~bite
    return mask


def _lobed_shape(rng: np.random.Generator, lobe_radius: float) -> np.ndarray:
    """Boolean mask of a neutrophil nucleus: 2-4 lobes along a bent chain joined by thin strands."""
    n_lobes = int(rng.choice([2, 3, 3, 4, 4]))
    step = lobe_radius * rng.uniform(1.6, 2.0)
    heading = rng.uniform(0, 2 * np.pi)
    centres = [np.zeros(2)]
    for _ in range(n_lobes - 1):
        heading += rng.uniform(-1.1, 1.1)
        centres.append(centres[-1] + step * np.array([math.cos(heading), math.sin(heading)]))
    centres = np.array(centres) - np.mean(centres, axis=0)
    half = int(math.ceil(np.abs(centres).max() + lobe_radius * 1.3 + 2))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    mask = np.zeros(xx.shape, bool)
    for i, (cx, cy) in enumerate(centres):
        rad = lobe_radius * rng.uniform(0.85, 1.2)
        mask |= np.hypot(xx - cx, yy - cy) <= rad
        if i:  # strand to the previous lobe
            px, py = centres[i - 1]
            seg = np.array([cx - px, cy - py])
            t = np.clip(((xx - px) * seg[0] + (yy - py) * seg[1]) / (seg @ seg), 0, 1)
            mask |= np.hypot(xx - (px + t * seg[0]), yy - (py + t * seg[1])) <= max(1.0, lobe_radius * 0.3)
    return mask


def nucleus_shape(rng: np.random.Generator, class_id: int, scale: float = 1.0) -> np.ndarray:
    """Boolean mask (odd square crop, centred) of one nucleus of class ``class_id`` (1..4)."""
    spec = CLASS_SPECS[class_id]
    radius = rng.uniform(*spec['radius']) * scale
    if class_id == 4:
        return _lobed_shape(rng, radius)
    return _polar_shape(rng, radius, rng.uniform(*spec['elong']), spec['irregular'], kidney=class_id == 3
                        and rng.random() < 0.85)


# -------------------------------------------------------------------------------------------- textures
def _smooth_noise(rng: np.random.Generator, shape: Tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-std noise with features of about ``scale`` px (drawn small, then upsampled)."""
    h, w = shape
    sh, sw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    small = ndimage.gaussian_filter(rng.standard_normal((sh, sw)).astype(np.float32), 1.0)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return (big - big.mean()) / (big.std() + 1e-6)


def _fine_noise(rng: np.random.Generator, shape: Tuple[int, int], sigma: float) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    return noise / (noise.std() + 1e-6)


def _fibres(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
    """Wavy stroma fibres (collagen), as an eosin density in [0, 1]."""
    h, w = shape
    canvas = np.zeros(shape, np.float32)
    n = int(rng.integers(2, 6) * max(1.0, h * w / 250_000))
    main_dir = rng.uniform(0, np.pi)
    for _ in range(n):
        length = rng.uniform(0.3, 1.2) * max(h, w)
        direction = main_dir + rng.normal(0, 0.35)
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        t = np.linspace(-0.5, 0.5, max(8, int(length / 6)))
        wave = rng.uniform(3, 12) * np.sin(2 * np.pi * t * rng.uniform(1, 4) + rng.uniform(0, 6.3))
        xs = x0 + t * length * math.cos(direction) - wave * math.sin(direction)
        ys = y0 + t * length * math.sin(direction) + wave * math.cos(direction)
        pts = np.stack([xs, ys], 1).round().astype(np.int32)
        cv2.polylines(canvas, [pts], False, float(rng.uniform(0.4, 1.0)), int(rng.integers(1, 4)), cv2.LINE_AA)
    return cv2.GaussianBlur(canvas, (0, 0), 1.2)


# -------------------------------------------------------------------------------------------- placement
def _draw_class(rng: np.random.Generator, mix: np.ndarray) -> int:
    return int(rng.choice(NUM_CLASSES, p=mix)) + 1


def _scene_mix(rng: np.random.Generator) -> Tuple[np.ndarray, float]:
    """Class mix and clustering of one image: lymphoid, epithelial or mixed tissue."""
    kind = rng.choice(['lymphoid', 'epithelial', 'mixed'], p=[0.35, 0.35, 0.3])
    if kind == 'lymphoid':
        mix = [0.06, 0.88, 0.035, 0.025]
    elif kind == 'epithelial':
        mix = [0.7, 0.24, 0.035, 0.025]
    else:
        mix = [0.3, 0.62, 0.05, 0.03]
    mix = np.asarray(mix) * rng.uniform(0.7, 1.3, 4)
    return mix / mix.sum(), float(rng.uniform(0.5, 0.9))


def _place_nuclei(rng: np.random.Generator, shape: Tuple[int, int], n_cells: int,
                  scale: float = 1.0) -> Tuple[np.ndarray, list]:
    """Place nuclei on an owner map (0 = none, n = nucleus n-1), with clusters and touching neighbours.

    ``scale`` multiplies every nucleus radius (one magnification per image). Returns the owner map and per-nucleus
    dicts ``(class_id, cut)`` where ``cut`` means part of the shape fell outside the image.
    """
    h, w = shape
    owner = np.zeros(shape, np.int32)
    cells: list = []
    mix, clustered = _scene_mix(rng)
    n_clusters = max(1, int(round(n_cells * clustered / 25)))
    centres = np.stack([rng.uniform(0, h, n_clusters), rng.uniform(0, w, n_clusters)], 1)
    cluster_class = [_draw_class(rng, mix) for _ in range(n_clusters)]
    spreads = rng.uniform(30, 80, n_clusters) * scale * max(1.0, math.sqrt(n_cells / max(1, n_clusters)) / 3)
    for _ in range(n_cells):
        for _attempt in range(10):  # crowded sheets need several tries to find a gap
            if rng.random() < clustered:
                c = int(rng.integers(n_clusters))
                cy, cx = rng.normal(centres[c], spreads[c])
                class_id = cluster_class[c] if rng.random() < 0.8 else _draw_class(rng, mix)
                if class_id in (3, 4) and rng.random() < 0.7:  # macrophages and neutrophils stay rare
                    class_id = _draw_class(rng, mix)
            else:
                cy, cx = rng.uniform(-8, h + 8), rng.uniform(-8, w + 8)
                class_id = _draw_class(rng, mix)
            shape_mask = nucleus_shape(rng, class_id, scale)
            half = shape_mask.shape[0] // 2
            y0, x0 = int(round(cy)) - half, int(round(cx)) - half
            y1, x1 = y0 + shape_mask.shape[0], x0 + shape_mask.shape[1]
            cy0, cx0, cy1, cx1 = max(0, y0), max(0, x0), min(h, y1), min(w, x1)
            if cy1 - cy0 < 2 or cx1 - cx0 < 2:
                continue
            local = shape_mask[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            if local.sum() < 4:
                continue
            region = owner[cy0:cy1, cx0:cx1]
            overlap = np.count_nonzero(region[local]) / local.sum()
            if overlap > 0.15:  # small overlaps make touching cells; large ones would hide a nucleus
                continue
            free = local & (region == 0)
            region[free] = len(cells) + 1
            cut = bool(local.sum() < shape_mask.sum())
            cells.append(dict(class_id=class_id, cut=cut))
            break
    return owner, cells


# ---------------------------------------------------------------------------------------------- rendering
def _stain_profile(rng: np.random.Generator) -> dict:
    """Haematoxylin / eosin / residual DAB densities of one slide's nuclei, cytoplasm and stroma.

    Ranges follow the per-image medians measured on the 13 MoNuSeg tiles (``tissue_statistics``): nuclei H 0.5-1.8,
    E 0.03-0.55 with DAB residual ~0.3 + 0.75 E; background H 0.05-0.45 (once 0.85), E 0.03-0.45 with DAB
    residual ~0.16 + 0.9 E (cytoplasm is drawn a little denser, as the measured background includes white
    space). The residual DAB channel is how real stains differ from the textbook vectors.
    """
    nh = math.exp(rng.uniform(math.log(0.6), math.log(1.7)))
    ne = rng.uniform(0.05, 0.5)
    nd = 0.3 + 0.75 * ne + rng.normal(0, 0.06)
    ch = rng.uniform(0.4, 0.8) if rng.random() < 0.1 else rng.uniform(0.08, 0.4)
    ce = rng.uniform(0.05, 0.5)
    se = min(0.8, ce * rng.uniform(1.0, 1.6) + 0.05)
    return dict(nucleus=np.array([nh, ne, max(0.1, nd)], np.float32),
                cytoplasm=np.array([ch, ce, 0.12 + 0.8 * ce + rng.normal(0, 0.04)], np.float32),
                stroma=np.array([ch * rng.uniform(0.3, 0.8), se, 0.12 + 0.8 * se], np.float32))


def _render(rng: np.random.Generator, owner: np.ndarray, cells: list) -> np.ndarray:
    """Render the H&E image (H, W, 3 uint8 RGB) for an owner map."""
    shape = owner.shape
    n = len(cells)
    prof = _stain_profile(rng)
    class_of = np.zeros(n + 1, np.int32)
    level = np.zeros(n + 1, np.float32)
    rim = np.zeros(n + 1, np.float32)
    chrom = np.zeros(n + 1, np.float32)
    vesicular = np.zeros(n + 1, np.float32)
    for i, cell in enumerate(cells, start=1):
        spec = CLASS_SPECS[cell['class_id']]
        class_of[i] = cell['class_id']
        level[i] = rng.uniform(*spec['od']) * rng.uniform(0.85, 1.15)
        rim[i] = spec['rim'] * rng.uniform(0.6, 1.3)
        chrom[i] = spec['chromatin'] * rng.uniform(0.7, 1.3)
        vesicular[i] = spec['vesicular'] * rng.uniform(0.5, 1.5)
    nuclei = owner > 0
    cls = class_of[owner]

    # cell territories: every background pixel belongs to its nearest nucleus; near the nucleus it is cytoplasm
    dist_out, (iy, ix) = ndimage.distance_transform_edt(~nuclei, return_indices=True) if n else \
        (np.full(shape, 1e3, np.float32), np.indices(shape))
    territory = owner[iy, ix]
    # cytoplasm by cell type (reach in px, tone): epithelial sheets (some cells clear), a scant rim round
    # lymphocytes, wide pale foamy macrophages, lilac granular neutrophils; the types stay tellable apart
    cell_reach = np.zeros(n + 1, np.float32)
    cell_tone = np.zeros(n + 1, np.float32)
    foam = np.zeros(n + 1, np.float32)
    clear = rng.uniform(0.0, 0.3)
    for i in range(1, n + 1):
        reach_range, tone_range = CYTOPLASM[int(class_of[i])]
        cell_reach[i] = rng.uniform(*reach_range)
        cell_tone[i] = 0.15 if class_of[i] == 1 and rng.random() < clear else rng.uniform(*tone_range)
        foam[i] = 2.0 if class_of[i] == 3 else 0.0
    reach = cell_reach[territory] * (1 + 0.3 * _smooth_noise(rng, shape, 30))
    cyto = 1 / (1 + np.exp((dist_out - reach) / 1.5))  # soft edge of the cytoplasm
    membranes = np.zeros(shape, bool)
    membranes[1:] |= territory[1:] != territory[:-1]
    membranes[:, 1:] |= territory[:, 1:] != territory[:, :-1]
    membranes = cv2.GaussianBlur((membranes & ~nuclei).astype(np.float32), (0, 0), 0.8) * cyto
    granular = 0.25 * _fine_noise(rng, shape, 1.2) + 0.2 * _smooth_noise(rng, shape, 8)

    # stroma: eosin with low-frequency texture and fibres; white lumen / fat where a smooth field is high
    stroma = prof['stroma'][None, None] * (1 + 0.25 * _smooth_noise(rng, shape, rng.uniform(40, 120))[..., None])
    stroma = stroma * (1 + 0.15 * _fine_noise(rng, shape, 1.5)[..., None])
    stroma[..., 1:] += (rng.uniform(0.2, 0.5) * _fibres(rng, shape))[..., None] * np.array([1.0, 0.9], np.float32)
    cytoplasm = prof['cytoplasm'][None, None] * (cell_tone[territory] * (1 + granular * (1 + foam[territory])))[
        ..., None]
    # membranes: pale gaps between cells in some slides, darker pink lines in others
    membrane_gain = rng.choice([-0.7, 0.5]) * rng.uniform(0.5, 1.0)
    cytoplasm = cytoplasm * (1 + membrane_gain * membranes)[..., None]
    od = cyto[..., None] * cytoplasm + (1 - cyto[..., None]) * stroma
    lumen = _smooth_noise(rng, shape, rng.uniform(50, 160)) > rng.uniform(1.0, 2.4)
    lumen = cv2.GaussianBlur(lumen.astype(np.float32), (0, 0), 3) * (1 - 0.8 * cyto)
    od = od * (1 - 0.92 * lumen)[..., None]

    # cytoplasm around macrophages (pale foamy) and neutrophils (lilac granular)
    for class_id, gain, h_add, grow in ((3, -0.45, 0.05, 7), (4, 0.25, 0.12, 4)):
        sel = cls == class_id
        if sel.any():
            halo = cv2.dilate(sel.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
            halo = cv2.GaussianBlur(halo.astype(np.float32), (0, 0), 1.5) * ~nuclei
            od[..., 1:] *= (1 + gain * halo)[..., None]
            od[..., 0] += h_add * halo

    # nuclei: dark rim (nuclear membrane), pale vesicular centre, chromatin grain and clumps, nucleoli
    boundary = np.zeros(shape, bool)
    boundary[:-1] |= owner[:-1] != owner[1:]
    boundary[1:] |= owner[1:] != owner[:-1]
    boundary[:, :-1] |= owner[:, :-1] != owner[:, 1:]
    boundary[:, 1:] |= owner[:, 1:] != owner[:, :-1]
    dist = ndimage.distance_transform_edt(nuclei & ~boundary).astype(np.float32)
    grain = _fine_noise(rng, shape, 0.8)
    clumps = _fine_noise(rng, shape, rng.uniform(1.8, 3.0))
    relative = level[owner] * (1 + rim[owner] * np.exp(-dist / 1.5) - vesicular[owner] * (1 - np.exp(-dist / 3))
                               + chrom[owner] * (0.4 * grain + 0.6 * np.maximum(clumps, -0.6)))
    epi = np.flatnonzero(class_of == 1)
    if epi.size:  # nucleoli in epithelial nuclei: small dark dots
        ys, xs = np.nonzero((cls == 1) & (dist > 4))
        if ys.size:
            pick = rng.choice(ys.size, size=min(ys.size, int(epi.size * 1.3)), replace=False)
            dots = np.zeros(shape, np.float32)
            dots[ys[pick], xs[pick]] = 1
            relative += cv2.GaussianBlur(dots, (0, 0), 1.2) * 8.0 * (cls == 1)
    relative = np.maximum(relative, 0.25)
    nucleus_od = relative[..., None] * prof['nucleus'][None, None] * np.array([1.0, 0.5, 0.7], np.float32) \
        + prof['nucleus'][None, None] * np.array([0.0, 0.5, 0.3], np.float32)
    od = np.where(nuclei[..., None], nucleus_od, od)

    img = hed_to_rgb(np.maximum(od, 0) * rng.uniform(0.9, 1.1, 3).astype(np.float32))
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.8))  # optics
    img += rng.normal(0, rng.uniform(0.4, 1.6), img.shape).astype(np.float32)  # sensor noise
    img *= rng.uniform(0.94, 1.0)  # illumination
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- images
def _image_size(rng: np.random.Generator, min_size: int, max_size: int) -> Tuple[int, int]:
    """Log-uniform side lengths (median ~ sqrt(min * max)), aspect ratio up to about 1:3 like the contest."""
    side = math.exp(rng.uniform(math.log(min_size), math.log(max_size)))
    aspect = math.exp(rng.normal(0, 0.35))
    h = int(np.clip(round(side * math.sqrt(aspect)), min_size, max_size))
    w = int(np.clip(round(side / math.sqrt(aspect)), min_size, max_size))
    return h, w


def synthesize_image(rng: np.random.Generator, height: int, width: int, keep_border: bool = False,
                     density: float = 1.0) -> Tuple[np.ndarray, Dict[int, np.ndarray]]:
    """Draw one image and its class maps.

    Args:
        rng: the random stream of this image.
        height: image height in px.
        width: image width in px.
        keep_border: annotate nuclei cut by the image border too (the contest mostly leaves them out).
        density: multiplier of the number of nuclei (1.0: about 300-650 per million px, like real 40x tissue).

    Returns:
        ``(rgb, class_maps)``: (H, W, 3) uint8 RGB and ``{class_id: (H, W) float64}`` for the classes present.
    """
    n_cells = max(1, int(round(height * width * 1e-6 * rng.uniform(*NUCLEI_PER_MPX) * density)))
    scale = math.exp(rng.uniform(math.log(0.85), math.log(1.3)))  # magnification / tissue variation per image
    owner, cells = _place_nuclei(rng, (height, width), n_cells, scale)
    rgb = _render(rng, owner, cells)
    annotated = [i for i, c in enumerate(cells, start=1) if keep_border or not c['cut']]
    # image-global, non-contiguous ids, with values above 255 as soon as there are a few cells
    pool = np.arange(1, 3 * len(annotated) + 300)
    ids = np.zeros(len(cells) + 1, np.float64)
    ids[annotated] = rng.choice(pool, size=len(annotated), replace=False)
    id_map = ids[owner]
    cls_map = np.array([0] + [c['class_id'] for c in cells], np.int32)[owner]
    class_maps = {}
    for class_id in range(1, NUM_CLASSES + 1):
        cmap = np.where(cls_map == class_id, id_map, 0.0)
        if cmap.any():
            class_maps[class_id] = cmap
    return rgb, class_maps


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def make_synthetic_hw3(out_dir: Union[str, Path], num_train: int = 20, num_test: int = 5, seed: int = 0,
                       min_size: int = 80, max_size: int = 1500, keep_border: bool = False,
                       density: float = 1.0, progress: bool = False) -> Path:
    """Write a synthetic data set in the exact HW3 layout.

    ``train/<uuid>/image.tif`` (RGBA, LZW) + ``class<K>.tif`` (float64, only classes present),
    ``test_release/<uuid>.tif``, ``test_image_name_to_ids.json`` and ``test_gt_coco.json`` (the test split's
    ground truth as COCO RLE with image ids = contest ids, category ids 1..4; the real contest hides it).

    Args:
        out_dir: the data root to create (existing files of the same names are replaced).
        num_train: number of training folders.
        num_test: number of test images.
        seed: random seed; the same seed gives the same files.
        min_size: smallest image side in px.
        max_size: largest image side in px.
        keep_border: annotate nuclei cut by the image border.
        density: multiplier of the number of nuclei per image.
        progress: show a progress bar.

    Returns:
        ``out_dir`` as a Path.
    """

    if not 8 <= min_size <= max_size:
        raise ValueError(f'need 8 <= min_size <= max_size, got {min_size}, {max_size}')
    out = Path(out_dir)
    jobs = [('train', i) for i in range(num_train)] + [('test', i) for i in range(num_test)]
    test_ids = np.random.default_rng([seed, 7]).permutation(num_test) + 1
    id_entries, gt_entries = [], []
    iterator = jobs
    if progress:
        iterator = tqdm(jobs, desc='synthetic HW3', unit='img')
    for split, index in iterator:
        rng = np.random.default_rng([seed, 0 if split == 'train' else 1, index])
        name = _uuid(rng)
        h, w = _image_size(rng, min_size, max_size)
        rgb, class_maps = synthesize_image(rng, h, w, keep_border=keep_border, density=density)
        if split == 'train':
            sample = out / 'train' / name
            sample.mkdir(parents=True, exist_ok=True)
            for stale in sample.glob('class*.tif'):
                stale.unlink()
            write_image_tif(sample / 'image.tif', rgb)
            for class_id, cmap in class_maps.items():
                write_class_map(sample / f'class{class_id}.tif', cmap)
            continue
        file_name = f'{name}.tif'
        write_image_tif(out / 'test_release' / file_name, rgb)
        img_id = int(test_ids[index])
        id_entries.append(dict(file_name=file_name, id=img_id, height=h, width=w))
        gt_entries.append(dict(img_id=img_id, file_name=file_name, height=h, width=w, instances=[
            dict(bbox_label=class_id - 1, bbox=inst.bbox, mask=inst.rle)
            for class_id, cmap in class_maps.items() for inst in class_map_instances(cmap, class_id)]))
    if num_test:
        write_json(out / 'test_image_name_to_ids.json', id_entries)
        write_json(out / 'test_gt_coco.json', coco_ground_truth(gt_entries))
    return out

