"""Pipeline transforms registered into mmdet TRANSFORMS."""
