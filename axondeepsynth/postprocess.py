"""Clean a predicted label map axon by axon, as AxonDeepSeg users expect of a fibre.

Each step is a switch of `seg.postprocess` (recorded with the kept model):
- `fill_holes`: pixels enclosed by one axon become axon (a dark organelle is not a hole);
- `min_axon_area_um2`: axons smaller than this are background (specks between fibres);
- `drop_unmyelinated`: axons with no myelin pixel within `ring_um` of their border are
  background (extracellular space and vessels look like axons, but nothing wraps them).
Axons are 8-connected components, as in `morphometrics.py` and AxonDeepSeg. Imports no torch.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as components

from axondeepsynth.config import PostprocessConfig
from axondeepsynth.data.labels import AXON, BACKGROUND, MYELIN


def clean(labels: np.ndarray, pixel_size: float, cfg: PostprocessConfig) -> np.ndarray:
    """A copy of a label map (0 background, 1 myelin, 2 axon) at `pixel_size` µm/px, cleaned."""
    out = labels.copy()
    if not cfg.active:
        return out
    if cfg.fill_holes:
        out[ndi.binary_fill_holes(out == AXON)] = AXON
    axons, n = components(out == AXON, connectivity=2, return_num=True)
    if n == 0:
        return out
    drop = np.zeros(n + 1, bool)
    if cfg.min_axon_area_um2 > 0:
        area = np.bincount(axons.ravel(), minlength=n + 1) * pixel_size**2
        drop |= area < cfg.min_axon_area_um2
    if cfg.drop_unmyelinated:
        # each myelin pixel within the ring counts for its nearest axon
        dist, (iy, ix) = ndi.distance_transform_edt(axons == 0, return_indices=True)
        near = (out == MYELIN) & (dist <= max(1.0, cfg.ring_um / pixel_size))
        drop |= np.bincount(axons[iy, ix][near], minlength=n + 1) == 0
    drop[0] = False
    out[drop[axons]] = BACKGROUND
    return out
