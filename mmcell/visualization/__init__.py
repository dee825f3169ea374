"""Pictures a person reads: plots of scores, confusion and statistics; GT and prediction overlays."""
from .plots import (
                    draw_gt_contours,
                    plot_confusion,
                    plot_score_histogram,
                    plot_statistics,
                    render_comparison,
                    save_confusion,
)

__all__ = ['draw_gt_contours', 'plot_confusion', 'plot_score_histogram', 'plot_statistics', 'render_comparison',
           'save_confusion']
