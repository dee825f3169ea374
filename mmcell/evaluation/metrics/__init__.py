"""Metrics registered into mmdet METRICS."""
