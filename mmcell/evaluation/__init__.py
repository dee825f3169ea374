"""mmcell.evaluation."""
