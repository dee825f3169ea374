"""Hooks registered into mmdet HOOKS."""
