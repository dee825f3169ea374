"""mmcell.datasets."""
