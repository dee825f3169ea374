"""mmcell.apis."""
