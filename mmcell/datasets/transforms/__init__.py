"""Pipeline transforms registered into mmdet TRANSFORMS."""
from .augment import ElasticTransform, HEDStainJitter, RandomRot90
from .loading import LoadCellAnnotations, LoadCellImage

__all__ = ['ElasticTransform', 'HEDStainJitter', 'RandomRot90', 'LoadCellAnnotations', 'LoadCellImage']
