"""Axon detection scored by AxonDeepSeg's rule (`testing/segmentation_scoring.score_analysis`).

Each predicted axon (an 8-connected component of more than 2 pixels) is reduced to its
centroid, truncated to whole pixels (and centroids that fall on one pixel count once), as
AxonDeepSeg does. A true axon holding at least one centroid is found (one hit per true axon);
further centroids in it are splits; a centroid in no true axon is a false positive. Counts add
up over images, so a fold's sensitivity is found / true axons, its precision found / (found +
false positives) and its diffusion splits / (found + false positives), AxonDeepSeg's three
scores (it rounds them to 3 decimals). Imports no torch.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as components

MIN_AREA = 3  # px: AxonDeepSeg leaves out predicted components of 2 pixels or fewer


def counts(pred_axon: np.ndarray, true_axon: np.ndarray) -> dict[str, int]:
    """Found, false-positive and split predicted axons, and the true and predicted counts, of
    one image's boolean axon masks."""
    pred, n_pred = components(pred_axon, connectivity=2, return_num=True)
    true, n_true = components(true_axon, connectivity=2, return_num=True)
    area = np.bincount(pred.ravel(), minlength=n_pred + 1)
    kept = np.flatnonzero(area >= MIN_AREA)
    kept = kept[kept > 0]
    centres = np.asarray(ndi.center_of_mass(pred_axon, pred, kept)).reshape(-1, 2)
    rows, cols = np.unique(np.floor(centres).astype(int), axis=0).T
    hit = true[rows, cols]
    per_true = np.bincount(hit[hit > 0], minlength=n_true + 1)[1:]
    return {
        "found": int((per_true > 0).sum()),
        "false_positives": int((hit == 0).sum()),
        "splits": int(np.maximum(per_true - 1, 0).sum()),
        "n_true": int(n_true),
        "n_pred": len(kept),
    }


def scores(per_image: list[dict[str, int]]) -> dict[str, float | None]:
    """Sensitivity, precision, diffusion and predicted over true count, of the counts of
    several images added up (None where undefined)."""
    total = {k: sum(c[k] for c in per_image) for k in ("found", "false_positives", "splits")}
    n_true = sum(c["n_true"] for c in per_image)
    n_pred = sum(c["n_pred"] for c in per_image)
    claimed = total["found"] + total["false_positives"]
    return {
        "sensitivity": total["found"] / n_true if n_true else None,
        "precision": total["found"] / claimed if claimed else None,
        "diffusion": total["splits"] / claimed if claimed else None,
        "count_ratio": n_pred / n_true if n_true else None,
    }
