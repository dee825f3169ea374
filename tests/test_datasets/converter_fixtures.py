"""Tiny source data sets in the public formats (ImageScope XML, PanNuke/CoNIC npy, DSB2018 PNGs, label images),
built in tmp dirs from the project's synthetic generator or by hand."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from mmcell.datasets.image_io import write_image_tif
from mmcell.synthetic.hw3 import synthesize_image


def synthetic_instances(seed: int = 0, height: int = 64, width: int = 80) -> Tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """``(rgb, ids, classes)``: a synthetic H&E image, its instance map (int64, image-global ids, touching cells
    separate) and its per-pixel class map (1..4)."""
    rgb, class_maps = synthesize_image(np.random.default_rng(seed), height, width, keep_border=True, density=2.0)
    ids = np.zeros((height, width), np.int64)
    classes = np.zeros((height, width), np.int64)
    for k, cmap in class_maps.items():
        ids[cmap > 0] = cmap[cmap > 0].astype(np.int64)
        classes[cmap > 0] = k
    return rgb, ids, classes


def instance_pixel_sets(ids: np.ndarray) -> List[frozenset]:
    """The pixel sets (flat indices) of every instance of a label map, sorted, for order-free comparison."""
    flat = ids.ravel()
    # sorted by (first pixel, size): frozensets only have a partial order (subset), which would make the order
    # depend on the ids
    return sorted((frozenset(np.flatnonzero(flat == v).tolist()) for v in np.unique(flat) if v),
                  key=lambda pixels: (min(pixels), len(pixels)))


def write_xml(path: Path, layers: Sequence[Tuple[str, Sequence[Sequence[Tuple[float, float]]]]]) -> Path:
    """An Aperio ImageScope XML with one ``Annotation`` per (name, polygons) layer (name in its Attribute)."""
    lines = ['<Annotations MicronsPerPixel="0.252700">']
    region_id = 0
    for n, (name, polygons) in enumerate(layers, start=1):
        lines += [f'<Annotation Id="{n}" Name="" Type="4">', '<Attributes>',
                  f'<Attribute Name="{name}" Id="0" Value=""/>', '</Attributes>', '<Regions>']
        for poly in polygons:
            region_id += 1
            lines += [f'<Region Id="{region_id}" Type="0">', '<Vertices>']
            lines += [f'<Vertex X="{x}" Y="{y}"/>' for x, y in poly]
            lines += ['</Vertices>', '</Region>']
        lines += ['</Regions>', '</Annotation>']
    lines.append('</Annotations>')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(lines))
    return path


def square(x0: float, y0: float, x1: float, y1: float) -> List[Tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_monuseg(src: Path, images: Dict[str, Sequence], size: Tuple[int, int] = (40, 48),
                  suffix: str = '.tif') -> Path:
    """MoNuSeg release layout: ``Tissue Images/<stem>.tif`` + ``Annotations/<stem>.xml``."""
    for k, (stem, polygons) in enumerate(images.items()):
        rgb = synthetic_instances(k, *size)[0]
        image = src / 'Tissue Images' / f'{stem}{suffix}'
        image.parent.mkdir(parents=True, exist_ok=True)
        if suffix == '.png':
            write_png(image, rgb)
        else:
            write_image_tif(image, rgb)
        write_xml(src / 'Annotations' / f'{stem}.xml', [('Description', polygons)])
    return src


def write_pannuke(src: Path, num: int = 3, float_images: bool = True, fold: str = 'fold1') -> Tuple[np.ndarray,
                                                                                                        list]:
    """A PanNuke fold from synthetic images (classes 1..4 -> channels 0..3, channel 5 background).

    Returns ``(images, truths)``: the uint8 images and per patch the (ids, classes) maps written.
    """
    images, masks, truths = [], [], []
    for i in range(num):
        rgb, ids, classes = synthetic_instances(10 + i, 48, 48)
        m = np.zeros((48, 48, 6), np.float64)
        for k in range(1, 5):
            m[..., k - 1] = np.where(classes == k, ids, 0)
        m[..., 5] = (ids == 0)
        images.append(rgb)
        masks.append(m)
        truths.append((ids, classes))
    (src / 'images' / fold).mkdir(parents=True, exist_ok=True)
    (src / 'masks' / fold).mkdir(parents=True, exist_ok=True)
    imgs = np.stack(images)
    np.save(src / 'images' / fold / 'images.npy', imgs.astype(np.float64) if float_images else imgs)
    np.save(src / 'masks' / fold / 'masks.npy', np.stack(masks))
    return imgs, truths


def qupath_feature(geometry: dict, name: Optional[str], kind: str = 'annotation', fid: Optional[str] = None,
                   **extra) -> dict:
    """One QuPath 0.4+ GeoJSON feature (``classification.name``; ``name`` None: unclassified)."""
    props = {'objectType': kind, **({'classification': {'name': name, 'color': [255, 0, 0]}} if name else {})}
    feature = {'type': 'Feature', 'geometry': geometry, 'properties': props, **extra}
    if fid:
        feature['id'] = fid
    return feature


def qupath_nuclei(ids: np.ndarray, classes: np.ndarray, names: Sequence[str], kind: str = 'detection') -> List[dict]:
    """The instances of a label map as QuPath features, outlined along pixel edges (``cell_polygon``)."""
    from mmcell.structures.cells import cell_polygon

    features = []
    for v in np.unique(ids):
        if v:
            ys, xs = np.nonzero(ids == v)
            crop = ids[ys.min():ys.max() + 1, xs.min():xs.max() + 1] == v
            name = names[int(classes[ys[0], xs[0]]) - 1]
            features.append(qupath_feature(cell_polygon(crop, int(xs.min()), int(ys.min())), name, kind,
                                           fid=f'nucleus-{int(v)}'))
    return features


def write_qupath(src: Path, stem: str, rgb: np.ndarray, features, suffix: str = '.geojson',
                 collection: bool = True) -> Tuple[Path, Path]:
    """``<stem>.tif`` (the slide) and ``<stem><suffix>`` (the export: FeatureCollection or bare list; ``.gz``)."""
    import gzip
    import json

    src.mkdir(parents=True, exist_ok=True)
    slide = src / f'{stem}.tif'
    write_image_tif(slide, rgb)
    text = json.dumps({'type': 'FeatureCollection', 'features': features} if collection else features)
    export = src / f'{stem}{suffix}'
    export.write_bytes(gzip.compress(text.encode()) if suffix.endswith('.gz') else text.encode())
    return slide, export


def write_consep(src: Path, stems: Sequence[str], size: Tuple[int, int] = (40, 48), num_types: int = 4,
                 keys: Sequence[str] = ('inst_map', 'type_map', 'inst_type', 'inst_centroid'),
                 overlay: bool = True) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The CoNSeP / HoVer-Net layout: ``Images/<stem>.png`` + ``Labels/<stem>.mat`` (``keys`` of ``inst_map``
    (ids 1..N), ``type_map``, ``inst_type`` (N, 1), ``inst_centroid`` (N, 2) x, y), and ``Overlay/<stem>.png`` (the
    release's drawings, same stems) when ``overlay``. Nucleus k has type ``(k - 1) % num_types + 1``.

    Returns:
        per stem ``(ids, types)``: the instance map written and the per-pixel type map.
    """
    from scipy.io import savemat

    truths = {}
    for k, stem in enumerate(stems):
        rgb, ids, _ = synthetic_instances(30 + k, *size)
        values = np.unique(ids)[1:]
        inst_map = np.searchsorted(values, ids) + 1
        inst_map[ids == 0] = 0
        inst_type = (np.arange(len(values)) % num_types + 1).astype(np.int32)
        type_map = np.where(inst_map > 0, np.concatenate([[0], inst_type])[inst_map], 0).astype(np.int32)
        centroids = np.array([[np.nonzero(inst_map == v)[1].mean(), np.nonzero(inst_map == v)[0].mean()]
                              for v in range(1, len(values) + 1)]).reshape(-1, 2)
        arrays = dict(inst_map=inst_map.astype(np.int32), type_map=type_map, inst_type=inst_type[:, None],
                      inst_centroid=centroids)
        write_png(src / 'Images' / f'{stem}.png', rgb)
        (src / 'Labels').mkdir(parents=True, exist_ok=True)
        savemat(src / 'Labels' / f'{stem}.mat', {key: arrays[key] for key in keys})
        if overlay:
            write_png(src / 'Overlay' / f'{stem}.png', 255 - rgb)
        truths[stem] = (inst_map, type_map)
    return truths
