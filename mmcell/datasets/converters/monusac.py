"""MoNuSAC 2020: H&E crops (Aperio ``.svs``, JPEG 2000 tiles, or ``.tif``) with one ImageScope XML each, one
``Annotation`` per nucleus class named by its ``Attribute Name``.

Input: ``<stem>.svs``/``.tif`` and ``<stem>.xml`` anywhere below SRC (the release nests them per patient),
matched by stem; ``.svs`` are read at level 0 through tifffile + imagecodecs. Default class map (= HW3, which is a
re-packaging of MoNuSAC): Epithelial -> 1, Lymphocyte -> 2, Macrophage -> 3, Neutrophil -> 4. Regions of the
``Ambiguous`` annotation (areas the annotators could not label) are skipped and counted; an annotation of any other
name is an error. Rasterisation and overlaps: see :mod:`.imagescope` and :mod:`.common`.
"""
from __future__ import annotations

from mmcell.utils.errors import HW3FormatError

from .common import ConvertedImage
from .monuseg import XmlItem, find_xml_items, rasterise_xml_item

CLASS_NAMES = ('Epithelial', 'Lymphocyte', 'Macrophage', 'Neutrophil')
#: annotation layers skipped on purpose (counted in the summary)
IGNORED_NAMES = ('Ambiguous',)

find_items = find_xml_items


def load_item(item: XmlItem) -> ConvertedImage:
    """Rasterise every class layer; ``Ambiguous`` regions are skipped and counted."""
    by_name = {name.lower(): k for k, name in enumerate(CLASS_NAMES, start=1)}
    ignored = {name.lower() for name in IGNORED_NAMES}

    def class_of(name: str) -> int:
        if name.lower() in ignored:
            return 0
        if name.lower() not in by_name:
            raise HW3FormatError(item.xml, f'unknown annotation class {name!r} (expected one of '
                                 f'{", ".join(CLASS_NAMES + IGNORED_NAMES)})')
        return by_name[name.lower()]

    return rasterise_xml_item(item, class_of)
