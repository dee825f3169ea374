"""Results out, for people and QuPath: label images and cell tables of single images, streamed GeoJSON / CSV
cells of whole slides, the OME-TIFF label pyramid and the slide preview."""
from .cells import SLIDE_TABLE_COLUMNS, CellWriter, DetectionWriter, class_names_colors
from .image import TABLE_COLUMNS, CellSegmentation, cell_table, save_labels
from .preview import PreviewCanvas
from .pyramid import write_label_pyramid

__all__ = ['SLIDE_TABLE_COLUMNS', 'CellWriter', 'DetectionWriter', 'class_names_colors', 'TABLE_COLUMNS',
           'CellSegmentation', 'cell_table', 'save_labels', 'PreviewCanvas', 'write_label_pyramid']
