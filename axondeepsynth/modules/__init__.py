"""LightningModules: the SynDiff translator and the segmentation proxy."""
