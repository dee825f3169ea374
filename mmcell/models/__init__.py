"""mmcell.models."""
