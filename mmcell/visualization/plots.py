"""Plots and overlays a person reads: detection score histograms, class confusion, GT-vs-prediction comparison panels,
GT contour drawings and data set statistics."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
from mmdet.structures.mask import bitmap_to_polygon

from mmcell.datasets.metainfo import CELL_METAINFO
from mmcell.datasets.metainfo import CLASSES as DEFAULT_CLASSES
from mmcell.datasets.statistics import statistics_class_names
from mmcell.evaluation.functional.classification import classification_scores, confusion_rows
from mmcell.evaluation.functional.coco import format_table
from mmcell.structures.label_image import instance_label_map
from mmcell.utils.errors import PathLike
from mmcell.utils.fileio import atomic_write_text, save_figure


# ------------------------------------------------------------------------------------------------------ plots
def save_confusion(conf: np.ndarray, classes: Sequence[str], out_dir: PathLike, title: str = '',
                   name: str = 'class_confusion') -> tuple:
    """Write a confusion matrix as a picture and as numbers: ``OUT_DIR/{name}.png`` and ``{name}.md`` (the table
    and HoVer-Net's F_c per class read from it). Returns the two paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_confusion(conf, classes, str(out_dir / f'{name}.png'), title)
    scores = classification_scores(conf)
    f1c = [{'class': c, 'F_c': scores['f1_c'][k]} for k, c in enumerate(classes, start=1)]
    text = (f'# {title or "class confusion of matched nuclei"}\n\n{format_table(confusion_rows(conf, classes))}\n\n'
            f'F_d {scores["f1_d"]:.4f}, type accuracy {scores["accuracy"]:.4f}\n\n{format_table(f1c)}\n')
    md = out_dir / f'{name}.md'
    atomic_write_text(md, text)
    return png, str(md)



def _pyplot() -> Any:
    import matplotlib  # deferred: matplotlib is heavy and only plots need it

    matplotlib.use('Agg')  # files only; never open a window
    import matplotlib.pyplot as plt  # deferred: matplotlib is heavy and only plots need it

    return plt


def plot_score_histogram(scores: np.ndarray, matched: np.ndarray, out_png: str, iou_thr: float = 0.5,
                         sweep: Sequence[Mapping] | None = None) -> str:
    """Histogram of detection scores split into matched (TP) / unmatched (FP), and the AP50 threshold sweep."""
    plt = _pyplot()
    ncols = 2 if sweep else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    bins = np.linspace(0, 1, 41)
    ax = axes[0, 0]
    ax.hist(scores[matched], bins=bins, alpha=0.7, label=f'matched GT (IoU>={iou_thr:g}): {int(matched.sum())}')
    ax.hist(scores[~matched], bins=bins, alpha=0.7, label=f'unmatched: {int((~matched).sum())}')
    ax.set_xlabel('score')
    ax.set_ylabel('detections')
    ax.set_yscale('log')
    ax.legend()
    ax.set_title('prediction scores')
    if sweep:
        ax = axes[0, 1]
        thr = [r['score_thr'] for r in sweep]
        ax.plot(thr, [r['ap50'] for r in sweep], marker='o')
        best = max(sweep, key=lambda r: r['ap50'])
        ax.axvline(best['score_thr'], ls='--', c='grey')
        ax.set_xlabel('score threshold')
        ax.set_ylabel('contest AP50 (segm, maxDets 100)')
        ax.set_title(f'best {best["ap50"]:.4f} at {best["score_thr"]:g}')
    fig.tight_layout()
    save_figure(fig, out_png, dpi=100)
    plt.close(fig)
    return out_png


def plot_confusion(conf: np.ndarray, classes: Sequence[str], out_png: str, title: str = '') -> str:
    """Heat map of a class confusion matrix
    (:func:`mmcell.evaluation.functional.classification.confusion_matrix`) with counts in the cells, each row
    shaded by its fraction of that GT class."""
    plt = _pyplot()
    rows = list(classes) + ['(false pos.)']
    cols = list(classes) + ['(missed)']
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2, 1.1 * len(rows) + 1.5))
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            ax.text(j, i, str(conf[i, j]), ha='center', va='center', color='black' if norm[i, j] < 0.6 else 'white')
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha='right')
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel('predicted class')
    ax.set_ylabel('ground-truth class')
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_png, dpi=100)
    plt.close(fig)
    return out_png


def render_comparison(image: np.ndarray, gt_masks: np.ndarray, gt_labels: Sequence[int], pred_masks: np.ndarray,
                      pred_labels: Sequence[int], pred_scores: Sequence[float] | None = None,
                      classes: Sequence[str] = DEFAULT_CLASSES, palette: Sequence | None = None,
                      show_scores: bool = False, min_side: int = 384) -> np.ndarray:
    """Side-by-side ``original | GT | prediction`` panels with instance contours coloured by class.

    Drawing goes through mmdet's ``DetLocalVisualizer`` (its matplotlib backend and palette helpers).

    Args:
        image: (H, W, 3) uint8 RGB.
        gt_masks, pred_masks: (N, H, W) bool.
        gt_labels, pred_labels: model labels 0..K-1.
        pred_scores: scores, drawn next to each prediction when ``show_scores``.
        classes, palette: names and RGB colours per class (default: mmdet's palette for K classes).
        show_scores: write the score of each prediction.
        min_side: small images are enlarged (nearest) so that their short side is at least this.

    Returns:
        (H', 3 W' + 2 * gap, 3) uint8 RGB.
    """
    from mmdet.visualization import DetLocalVisualizer  # deferred: mmdet's visualizer pulls in matplotlib
    from mmdet.visualization.palette import get_palette  # deferred: mmdet's visualizer pulls in matplotlib

    colors = get_palette(list(palette) if palette else 'random', len(classes))
    scale = max(1, int(np.ceil(min_side / max(1, min(image.shape[:2])))))
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    vis = DetLocalVisualizer(name=f'mmcell_compare_{id(image)}', line_width=1)

    def panel(masks: np.ndarray, labels: Sequence[int], scores: Sequence[float] | None, title: str) -> np.ndarray:
        vis.set_image(image.copy())
        for i, (mask, label) in enumerate(zip(masks, labels)):
            mask = np.asarray(mask, bool)
            if scale > 1:
                mask = np.kron(mask, np.ones((scale, scale), bool))
            contours, _ = bitmap_to_polygon(mask)
            contours = [c for c in contours if len(c) >= 3]
            if not contours:
                continue
            color = tuple(int(c) for c in colors[int(label)])
            vis.draw_polygons(contours, edge_colors=[color] * len(contours), line_widths=1.5)
            if show_scores and scores is not None:
                ys, xs = np.nonzero(mask)
                vis.draw_texts(f'{float(scores[i]):.2f}', np.array([xs.min(), ys.min()]), colors=color,
                               font_sizes=8)
        vis.draw_texts(title, np.array([4, 4]), colors=(255, 255, 255), font_sizes=10,
                       bboxes=[dict(facecolor='black', alpha=0.6, pad=1, edgecolor='none')])
        return vis.get_image()

    original = panel(np.zeros((0,) + image.shape[:2], bool), [], None, 'original')
    gt_panel = panel(gt_masks, gt_labels, None, f'GT ({len(gt_labels)})')
    pred_panel = panel(pred_masks, pred_labels, pred_scores, f'prediction ({len(pred_labels)})')
    gap = np.full((image.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([original, gap, gt_panel, gap, pred_panel], axis=1)


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


def plot_statistics(stats: dict, out_file: PathLike) -> Path:
    """Save a 2x2 PNG: image sizes, instances per class, instance-area histogram per class, border fraction."""
    import matplotlib  # deferred: matplotlib is heavy and only plots need it
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # deferred: matplotlib is heavy and only plots need it

    names = statistics_class_names(stats)
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
