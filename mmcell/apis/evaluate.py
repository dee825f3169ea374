"""Score a trained model on labelled HW3-layout tiles: a whole data root through the Runner's test loop
(:func:`evaluate_data_root`), or named tiles through the fast inference path with the project's headline figures
(:func:`evaluate_tiles`: AP50 / AP at maxDets 1000, AJI, AJI+, PQ), and a peer method's label images scored by the
same code (:func:`evaluate_label_images`).

``tools/test.py`` scores the split a config was written for; this scores any labelled data root with the same
model, e.g. how the synthetic ``make demo`` model does on real MoNuSeg tiles. It runs mmengine's Runner test loop
with the config's test pipeline on ``CellInstanceDataset(split='all')`` and :class:`CellCocoMetric`, optionally
class-agnostic (every prediction and ground-truth instance scored as one class ``'nucleus'``).

The config's ``model.test_cfg`` is used as it is: it is part of the model being scored. On dense tiles
(hundreds of nuclei) a cap below 1,000 detections per image lowers the maxDets-1000 figures; a warning says so
and ``cfg_options`` (``model.test_cfg.rcnn.max_per_img=1000``) raises it.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tifffile
import torch
from mmdet.datasets.transforms import PackDetInputs
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmcell.apis.builder import ConfigType, build_test_pipeline, init_cell_model
from mmcell.apis.predict import predict_images
from mmcell.datasets.hw3_format import list_train_samples, parse_sample
from mmcell.evaluation.metrics import CellCocoMetric, CellPathologyMetric
from mmcell.evaluation.metrics.cell_coco_metric import DENSE_MAX_DETS
from mmcell.evaluation.submission import LABEL_SCORE_THR  # AJI/PQ: the cells `mmcell segment` would keep
from mmcell.structures.label_image import instances_to_label_map
from mmcell.structures.rle import crop_rle
from mmcell.utils.errors import InputError
from mmcell.utils.fileio import atomic_write

#: the figures of :func:`evaluate_tiles` and :func:`evaluate_label_images`, in the order tables print them
TILE_FIGURES = ('AP50', 'AP', 'AJI', 'AJI+', 'PQ')
#: the class-aware figures :func:`evaluate_tiles` adds for a model of several classes: the contest AP50 (segm,
#: class-aware, maxDets 100 as Codabench), the same at maxDets 1000, then ``AP50 <class>`` (maxDets 100) per class,
#: then ``mPQ`` and ``PQ <class>`` per class (:func:`score_tile_samples`). ``PQ`` of :data:`TILE_FIGURES` is the
#: binary PQ (bPQ: every class as one)
CLASS_FIGURES = ('contest AP50', 'contest AP50 md1000')
#: the keys :func:`evaluate_data_root` callers print first (CellCocoMetric names, maxDets 1000 and contest 100)
HEADLINE_KEYS = ('segm_mAP_50_md1000', 'segm_mAP_md1000', 'segm_mAP_50', 'bbox_mAP_50_md1000', 'bbox_mAP_md1000')


def with_gt_instances(pipeline: list) -> list:
    """The test pipeline with ``'instances'`` kept by PackDetInputs (CellCocoMetric reads the ground truth there)."""

    pipeline = copy.deepcopy(list(pipeline))
    for step in pipeline:
        if step.get('type') in ('PackDetInputs', 'mmdet.PackDetInputs'):
            keys = tuple(step.get('meta_keys', PackDetInputs.__init__.__defaults__[0]))
            if 'instances' not in keys:
                step['meta_keys'] = keys + ('instances',)
    return pipeline


def _max_per_img(cfg: Config) -> Optional[int]:
    try:
        return int(cfg.model.test_cfg.rcnn.max_per_img)
    except (AttributeError, KeyError, TypeError):
        return None


def evaluate_data_root(config: ConfigType, checkpoint: str, data_root: str, class_agnostic: bool = False,
                       cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                       num_workers: int = 0, trust_checkpoint: bool = False,
                       precision: Optional[str] = None, engine: Optional[str] = None) -> Dict[str, float]:
    """COCO bbox/segm figures of ``checkpoint`` on every ``train/<name>/`` folder of ``data_root``.

    The model comes from :func:`mmcell.apis.init_cell_model` (the one inference builder: a checkpoint that does
    not fit the config is refused there), and mmengine's Runner runs its test loop on it.

    Args:
        config: the model's config (file or Config); its test pipeline and ``model.test_cfg`` are used.
        checkpoint: the ``.pth`` file.
        data_root: an HW3-layout folder with ``train/<name>/image.tif`` + ``class<K>.tif``.
        class_agnostic: score every instance as one class ``'nucleus'`` (finding and outlining nuclei, whatever
            their class; a 4-class model on one-class data such as MoNuSeg).
        cfg_options: overrides merged into the config first (``--cfg-options`` style dict).
        work_dir: where the Runner writes its log (default: a temporary folder, removed afterwards).
        num_workers: data-loading workers.
        trust_checkpoint: load a checkpoint that ``weights_only`` refuses (it can run code).
        precision: ``'fp32'`` / ``'bf16'`` / ``'int8'`` / ``'auto'``; None: the config's (see
            :func:`mmcell.apis.builder.inference_config`).
        engine: ``'torch'`` / ``'openvino'`` / ``'auto'``; None: the config's (same function).

    Returns:
        the :class:`mmcell.evaluation.CellCocoMetric` figures without the ``coco/`` prefix: ``segm_mAP_50_md1000``
        (AP50, maxDets 1000), ``segm_mAP_md1000``, ``segm_mAP_50`` (contest maxDets 100), the bbox ones, and
        per class (not class-agnostic) ``segm_<class>_AP50`` ...

    Raises:
        FileNotFoundError: config, checkpoint or data root missing.
        ValueError: the checkpoint is refused, unreadable or does not fit the config's model (``CheckpointError``);
            a file of the data root is
            not in the HW3 layout (``HW3FormatError``).
    """



    config_name = str(config.filename if isinstance(config, Config) else config)
    list_train_samples(data_root)  # a missing or empty root is one line here, not a Runner traceback
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f'{checkpoint}: checkpoint file not found')
    # the one builder validates the checkpoint (CheckpointError: one line naming the file)
    model = init_cell_model(config, checkpoint, cfg_options=cfg_options, trust_checkpoint=trust_checkpoint,
                            precision=precision, engine=engine)
    cfg = model.cfg
    cap = _max_per_img(cfg)
    if cap is not None and cap < DENSE_MAX_DETS:
        print_log(f'{config_name}: model.test_cfg.rcnn.max_per_img={cap} < {DENSE_MAX_DETS}: the maxDets-1000 '
                  'figures are capped on dense images (raise it with cfg_options)', logger='current', level=30)

    test_ds = cfg.get('test_dataloader', {}).get('dataset', {})
    dataset = dict(type='CellInstanceDataset', data_root=str(data_root), split='all', test_mode=True,
                   pipeline=with_gt_instances(build_test_pipeline(cfg, compose=False)))
    if class_agnostic:
        dataset.update(class_agnostic=True, metainfo=dict(classes=('nucleus', )))
    elif test_ds.get('metainfo'):
        dataset['metainfo'] = test_ds['metainfo']
    with tempfile.TemporaryDirectory(prefix='mmcell_eval_') as tmp:
        runner = Runner(
            model=model, work_dir=work_dir or tmp, experiment_name=f'eval_{os.path.basename(str(data_root))}',
            test_dataloader=dict(batch_size=1, num_workers=num_workers, persistent_workers=False, drop_last=False,
                                 sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset),
            test_cfg=dict(type='TestLoop'),
            test_evaluator=dict(type='CellCocoMetric', metric=['bbox', 'segm'], class_agnostic=class_agnostic,
                                classwise=not class_agnostic),
            default_hooks=dict(timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=10)),
            env_cfg=cfg.get('env_cfg', dict(dist_cfg=dict(backend='gloo'))), log_level=cfg.get('log_level', 'INFO'),
            default_scope=cfg.get('default_scope', 'mmdet'), cfg=cfg)
        metrics = runner.test() or {}
    return {k[len('coco/'):] if k.startswith('coco/') else k: float(v) for k, v in metrics.items()}


def tile_ground_truth(data_root: Union[str, Path], name: str, img_id: int, class_aware: bool = False) -> dict:
    """A metric data sample's ground-truth part for the converted tile ``train/<name>`` (all classes as one, or
    with ``class_aware`` label ``class<K>`` -> K - 1)."""
    sample = parse_sample(Path(data_root) / 'train' / name)
    instances = [dict(bbox=inst['bbox'], bbox_label=inst['class_id'] - 1 if class_aware else 0, mask=inst['mask'],
                      ignore_flag=0) for inst in sample['instances']]
    return dict(img_id=img_id, ori_shape=(sample['height'], sample['width']), instances=instances)


def score_tile_samples(samples: List[dict], pathology_score_thr: float,
                       classes: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """AP50 / AP (maxDets 1000, one class) and AJI / AJI+ / PQ of metric data samples, by mmcell's two metrics;
    with ``classes`` (samples labelled by class) also the class-aware figures of :data:`CLASS_FIGURES`.

    The PQ figures follow HoVer-Net and PanNuke (:mod:`mmcell.evaluation.functional.pq`; Graham et al. 2019,
    HoVer-Net's ``compute_stats.py``; Gamper et al. 2020, PanNuke's ``run.py``): per image, then averaged over the
    images. ``PQ`` is the binary PQ (bPQ: every class as one; the mean over images with GT nuclei). ``PQ <class>``
    is the PQ of the class-k GT against the class-k predictions, averaged over the images with class-k GT; ``mPQ``
    is the mean over images of each image's mean class PQ (the classes it has GT of). Being per image, a class-k
    prediction on an image without class-k GT costs ``PQ <class>`` and ``mPQ`` nothing (it costs bPQ); CoNIC's
    aggregated mPQ+ (Graham et al. 2021), pooled over images, would charge it.

    Args:
        samples: :func:`tile_ground_truth` dicts with ``pred_instances`` (bboxes, scores, labels, masks).
        pathology_score_thr: the detections that make the label image AJI and PQ are computed on.
        classes: the class names of the labels (ground truth and predictions); None: one class.
    """
    coco = CellCocoMetric(metric='segm', classwise=False, class_agnostic=True)
    path = CellPathologyMetric(score_thr=pathology_score_thr, classwise=False)
    figures = {}
    for metric in (coco, path):
        metric.dataset_meta = dict(classes=('nucleus', ))  # class-agnostic: every label scored as one class
        metric.process({}, samples)
        figures.update(metric.compute_metrics(metric.results))
    out = dict(AP50=figures['segm_mAP_50_md1000'], AP=figures['segm_mAP_md1000'], AJI=figures['aji'],
               **{'AJI+': figures['aji_plus']}, PQ=figures['pq'])
    if classes:
        aware = CellCocoMetric(metric='segm', classwise=True)
        aware.dataset_meta = dict(classes=tuple(classes))
        aware.process({}, samples)
        figures = aware.compute_metrics(aware.results)
        out['contest AP50'] = figures['segm_mAP_50']  # class-aware, maxDets 100 (Codabench)
        out['contest AP50 md1000'] = figures['segm_mAP_50_md1000']
        out.update({f'AP50 {name}': figures[f'segm_{name}_AP50'] for name in classes})
        # the same label images, class-aware: mPQ and PQ per class (the binary PQ is ``PQ`` above)
        aware_path = CellPathologyMetric(score_thr=pathology_score_thr, classwise=True)
        aware_path.dataset_meta = dict(classes=tuple(classes))
        aware_path.process({}, samples)
        figures = aware_path.compute_metrics(aware_path.results)
        out['mPQ'] = figures['mpq']
        out.update({f'PQ {name}': figures[f'{name}_pq'] for name in classes})
    return out


def predict_tile_samples(config: ConfigType, checkpoint: str, data_root: Union[str, Path], names: Sequence[str],
                         cfg_options: Optional[dict] = None,
                         class_aware: Optional[bool] = None) -> Tuple[List[dict], Tuple[str, ...]]:
    """The metric data samples of a model on the labelled tiles ``data_root/train/<name>``: each tile's ground truth
    (:func:`tile_ground_truth`) with every detection of the model (``pred_instances``: bboxes, scores, labels,
    masks; labels all 0 unless class-aware), predicted through the one builder's fast path
    (:func:`init_cell_model` + :func:`predict_images`, the config's test pipeline).

    Returns:
        ``(samples, classes)``: ``classes`` the model's class names when scored class-aware, else ``()``.
    """
    model = init_cell_model(config, checkpoint, cfg_options=cfg_options)
    classes = tuple((getattr(model, 'dataset_meta', None) or {}).get('classes') or ())
    if class_aware is None:
        class_aware = len(classes) > 1
    if class_aware and not classes:
        raise ValueError(f'{checkpoint}: the model names no classes (dataset_meta); class-aware scoring needs them')
    paths = [str(Path(data_root) / 'train' / n / 'image.tif') for n in names]
    samples = []
    for k, (name, out) in enumerate(zip(names, predict_images(model, paths, progress=False))):
        pred = out.pred_instances
        masks = pred.masks if isinstance(pred.masks, (list, tuple)) else torch.as_tensor(pred.masks)
        samples.append(dict(tile_ground_truth(data_root, name, k, class_aware), pred_instances=dict(
            bboxes=pred.bboxes, scores=pred.scores, labels=pred.labels if class_aware else torch.zeros_like(
                pred.labels), masks=masks)))
    return samples, classes if class_aware else ()


def evaluate_tiles(config: ConfigType, checkpoint: str, data_root: Union[str, Path], names: Sequence[str],
                   cfg_options: Optional[dict] = None, save_dir: Optional[Union[str, Path]] = None,
                   score_thr: float = LABEL_SCORE_THR, class_aware: Optional[bool] = None) -> Dict[str, float]:
    """The headline figures of a model on the labelled tiles ``data_root/train/<name>`` (one class; for a model of
    several classes also the class-aware ones, :data:`CLASS_FIGURES`, ``AP50 <class>``, ``mPQ`` and
    ``PQ <class>``).

    Predicts with :func:`predict_tile_samples` and scores with :func:`score_tile_samples`: AP50 and AP at maxDets
    1000 (CellCocoMetric), AJI, AJI+ and PQ of the label image of the detections scoring at least ``score_thr``
    (CellPathologyMetric).

    Args:
        config: the model's config (file or Config, e.g. with another test resize).
        checkpoint: its weights.
        data_root: an HW3-layout folder.
        names: tile folder names under ``train/``.
        cfg_options: overrides merged into the config first.
        save_dir: also write each tile's label image there (``<name>_labels.tif``, the one AJI/PQ score).
        score_thr: the label image's score threshold (default: the one ``mmcell segment`` keeps).
        class_aware: add the class-aware figures (the tiles' ``class<K>`` is class K - 1 of the model); None: when
            the model has more than one class.
    """
    samples, classes = predict_tile_samples(config, checkpoint, data_root, names, cfg_options, class_aware)
    if save_dir is not None:
        for name, sample in zip(names, samples):
            pred = sample['pred_instances']
            height, width = sample['ori_shape']
            labels, _ = instances_to_label_map(pred['masks'], pred['scores'].numpy(), pred['labels'].numpy(), height,
                                               width, score_thr=score_thr)
            atomic_write(Path(save_dir) / f'{name}_labels.tif',
                         lambda tmp, labels=labels: tifffile.imwrite(tmp, labels.astype(np.uint32)))
    return score_tile_samples(samples, pathology_score_thr=score_thr, classes=classes or None)


def label_image_instances(labels: np.ndarray, scores: Dict[int, float],
                          classes: Optional[Dict[int, int]] = None) -> dict:
    """The ``pred_instances`` of :func:`score_tile_samples` from a label image and ``id -> score`` (the cells of
    ``scores``; each encoded from its own box, not from a full-image mask); ``classes``: ``id -> label`` (0-based),
    else every cell is label 0."""
    from scipy import ndimage  # deferred: only label images need it

    labels = np.asarray(labels).astype(np.int64, copy=False)
    height, width = labels.shape
    ids = np.array(sorted(scores), dtype=np.int64)
    found = ndimage.find_objects(labels, max_label=int(ids.max(initial=0)))
    rles, boxes, kept = [], [], []
    for i in ids:
        if found[i - 1] is None:  # an id with no pixels (e.g. every pixel taken by a better cell)
            continue
        ys, xs = found[i - 1]
        rle = crop_rle(labels[ys, xs] == i, xs.start, ys.start, height, width)
        rle['counts'] = rle['counts'].decode()
        rles.append(rle)
        boxes.append([xs.start, ys.start, xs.stop, ys.stop])
        kept.append(int(i))
    return dict(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                scores=torch.tensor([scores[i] for i in kept], dtype=torch.float32),
                labels=torch.tensor([(classes or {}).get(i, 0) for i in kept], dtype=torch.int64), masks=rles)


def evaluate_label_images(data_root: Union[str, Path], names: Sequence[str], folder: Union[str, Path],
                          classes: Optional[Sequence[str]] = None,
                          pathology_score_thr: float = 0.0) -> Dict[str, float]:
    """Score a peer method's label images (``<name>_labels.tif`` + ``<name>_scores.json``: score per cell id; with
    ``classes`` also ``<name>_classes.json``: class per cell id, ``K`` as the tiles' ``class<K>.tif``).

    The same figures as :func:`evaluate_tiles`; the label image is the peer's segmentation, so by default every cell
    counts for AJI/PQ (``pathology_score_thr``: only the cells scoring at least this, as :func:`evaluate_tiles`
    does with ``score_thr``), and the scores rank the cells for AP. With ``classes`` (the names of classes 1..N)
    also the class-aware figures of a multi-class model (:data:`CLASS_FIGURES`, ``AP50 <class>``).

    Raises:
        InputError: with ``classes``, a cell of the label image without a class in 1..N in its
            ``<name>_classes.json`` (or no such file): one line naming the file.
    """
    folder = Path(folder)
    samples = []
    for k, name in enumerate(names):
        labels = tifffile.imread(folder / f'{name}_labels.tif')
        scores = {int(i): s for i, s in json.loads((folder / f'{name}_scores.json').read_text()).items()}
        cell_class = None
        if classes:
            path = folder / f'{name}_classes.json'
            given = {int(i): int(c) for i, c in json.loads(path.read_text()).items()} if path.is_file() else {}
            bad = [i for i in sorted(scores) if not 1 <= given.get(i, 0) <= len(classes)]
            if bad:
                raise InputError(f'{path}: {len(bad)} of {len(scores)} cells without a class in 1..{len(classes)} '
                                 f'(e.g. cell {bad[0]})')
            cell_class = {i: c - 1 for i, c in given.items()}
        samples.append(dict(tile_ground_truth(data_root, name, k, class_aware=bool(classes)),
                            pred_instances=label_image_instances(labels, scores, cell_class)))
    return score_tile_samples(samples, pathology_score_thr=pathology_score_thr,
                              classes=tuple(classes) if classes else None)
