"""LightningModules: the translators (`translators/`, a registry) and the segmentation proxy."""
