"""Converters of public nucleus data sets to the HW3 layout (one module per source format, driven by
:func:`convert_to_hw3`), and of HW3 folders to COCO json (:func:`hw3_to_coco`)."""
from .convert import FORMATS, convert_to_hw3, parse_class_map
from .hw3_coco import hw3_to_coco

__all__ = ['FORMATS', 'convert_to_hw3', 'parse_class_map', 'hw3_to_coco']
