"""MoNuSeg (MICCAI 2018): H&E tiles with one Aperio ImageScope XML of nucleus polygons each.

Input: ``<stem>.tif`` / ``.png`` / ``.svs`` images and ``<stem>.xml`` annotations anywhere below SRC (the release
has ``Tissue Images/`` and ``Annotations/``), matched by stem. Every ``Region`` of every ``Annotation`` is one
nucleus. Default class map: ``nucleus -> class1``. Rasterisation and overlaps: see :mod:`.imagescope` and
:mod:`.common`.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple

import numpy as np

from mmcell.datasets.converters.common import IMAGE_SUFFIXES, ConvertedImage, files_by_stem, match_by_stem
from mmcell.datasets.image_io import read_image
from mmcell.structures.label_image import paint_instances
from mmcell.utils.errors import PathLike

from .imagescope import check_inside, polygon_pixels, read_imagescope_xml

CLASS_NAMES = ('nucleus',)


class XmlItem(NamedTuple):
    """An image and its ImageScope XML."""
    stem: str
    image: Path
    xml: Path


def find_xml_items(src: PathLike) -> List[XmlItem]:
    """Images and XMLs below ``src`` matched by stem (an XML without image, or the reverse, is an error)."""
    images = files_by_stem(src, IMAGE_SUFFIXES, 'image')
    xmls = files_by_stem(src, ('.xml',), 'annotation')
    return [XmlItem(*t) for t in match_by_stem(images, xmls, src, 'ImageScope .xml annotation')]


find_items = find_xml_items


def rasterise_xml_item(item: XmlItem, class_of_annotation) -> ConvertedImage:
    """Read an image and rasterise its XML polygons.

    Args:
        item: the image and XML.
        class_of_annotation: ``name -> source class id`` (0: skip the annotation's regions and count them
            under ``name`` in ``ignored``).
    """
    rgb = read_image(item.image)
    height, width = rgb.shape[:2]
    layers = read_imagescope_xml(item.xml)
    check_inside(item.xml, [p for _, polys in layers for p in polys], height, width, item.image)
    pixels, classes, ignored = [], [], {}
    for name, polygons in layers:
        cls = class_of_annotation(name)
        if not cls:
            ignored[name] = ignored.get(name, 0) + len(polygons)
            continue
        for poly in polygons:
            pixels.append(polygon_pixels(poly, height, width))
            classes.append(cls)
    labels, kept, contested = paint_instances(pixels, height, width)
    return ConvertedImage(stem=item.stem, source=item.xml, rgb=rgb, labels=labels,
                          classes=np.concatenate([[0], np.asarray(classes, np.int64)[kept]]).astype(np.int64),
                          skipped=len(pixels) - len(kept), contested=contested, ignored=ignored)


def load_item(item: XmlItem) -> ConvertedImage:
    """Every region is a nucleus (class 1)."""
    return rasterise_xml_item(item, lambda name: 1)
