"""The project's own data: realistic synthetic H&E crops in the HW3 layout and synthetic whole slides with their
ground truth (what ``make demo`` and the tests run on)."""
from .hw3 import make_synthetic_hw3, synthesize_image
from .slide import read_ground_truth, write_synthetic_slide

__all__ = ['make_synthetic_hw3', 'synthesize_image', 'read_ground_truth', 'write_synthetic_slide']
