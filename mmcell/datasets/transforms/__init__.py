"""Pipeline transforms registered into mmdet TRANSFORMS."""
from .augment import ElasticTransform, HEDStainJitter, RandomRot90

__all__ = ['ElasticTransform', 'HEDStainJitter', 'RandomRot90']
