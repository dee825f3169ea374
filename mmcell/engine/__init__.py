"""mmcell.engine."""
