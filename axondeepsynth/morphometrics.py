"""Per-axon morphometrics of a label map, measured the way AxonDeepSeg measures them.

Each axon is an 8-connected component of the axon class, as in AxonDeepSeg (two axons touching
at a corner are one). Myelin pixels are given to the nearest axon (a watershed of the distance
to the axons, confined to axon + myelin), so touching sheaths are split between their fibres.
From the areas (scikit-image and SciPy, as AxonDeepSeg's own `compute_morphs` uses; its package
pins an older torch and does not install beside ours):

    axon_diam        = 2 sqrt(axon_area / pi)              (equivalent diameter)
    axonmyelin_diam  = 2 sqrt((axon_area + myelin_area) / pi)
    myelin_thickness = (axonmyelin_diam - axon_diam) / 2
    gratio           = axon_diam / axonmyelin_diam

Lengths are in µm and areas in µm² at the image's pixel size; column names are AxonDeepSeg's.
Fibres touching the image border are measured and flagged, and left out of the summaries. An
axon with no myelin is measured with a g-ratio of 1 (its fibre is the axon) and left out of the
g-ratio summaries (`myelinated`), where AxonDeepSeg's mean would turn NaN.
"""

from __future__ import annotations

import csv
import math
from io import StringIO

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import wasserstein_distance
from skimage.measure import label as components
from skimage.measure import regionprops
from skimage.segmentation import watershed

from axondeepsynth.data.labels import AXON, MYELIN

# AxonDeepSeg 5.5's columns in its order (shapes of the axon; fiber_* and bbox (px): of axon +
# myelin), then ours
COLUMNS = (
    "x0 (px)",
    "y0 (px)",
    "gratio",
    "axon_area (um^2)",
    "axon_perimeter (um)",
    "myelin_area (um^2)",
    "axon_diam (um)",
    "myelin_thickness (um)",
    "axonmyelin_area (um^2)",
    "axonmyelin_perimeter (um)",
    "eccentricity",
    "orientation",
    "fiber_eccentricity",
    "fiber_orientation",
    "solidity",
    "image_border_touching",
    "bbox_min_y",
    "bbox_min_x",
    "bbox_max_y",
    "bbox_max_x",
    "axonmyelin_diam (um)",
)


def measure(labels: np.ndarray, pixel_size: float) -> list[dict[str, float]]:
    """One row per axon of a label map (0 background, 1 myelin, 2 axon) at `pixel_size` µm/px."""
    axon = labels == AXON
    axons, n = components(axon, connectivity=2, return_num=True)
    if n == 0:
        return []
    fibres = watershed(ndi.distance_transform_edt(~axon), axons, mask=axon | (labels == MYELIN))
    index = np.arange(1, n + 1)
    axon_px = np.bincount(axons.ravel(), minlength=n + 1)[1:]
    fibre_px = np.bincount(fibres.ravel(), minlength=n + 1)[1:]
    centres = ndi.center_of_mass(axon, axons, index)
    edge = np.zeros_like(axon)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    touching = set(np.unique(fibres[edge])) - {0}
    area = pixel_size**2
    axon_shapes = {p.label: p for p in regionprops(axons)}
    fibre_shapes = {p.label: p for p in regionprops(fibres)}
    rows = []
    for i, (a_px, f_px, (y, x)) in enumerate(
        zip(axon_px.tolist(), fibre_px.tolist(), centres, strict=True), 1
    ):
        axon_diam = 2 * math.sqrt(a_px * area / math.pi)
        fibre_diam = 2 * math.sqrt(f_px * area / math.pi)
        shape, fibre = axon_shapes[i], fibre_shapes[i]
        min_y, min_x, max_y, max_x = fibre.bbox
        rows.append(
            {
                "x0 (px)": float(x),
                "y0 (px)": float(y),
                "gratio": axon_diam / fibre_diam,
                "axon_area (um^2)": a_px * area,
                "axon_perimeter (um)": shape.perimeter * pixel_size,
                "myelin_area (um^2)": (f_px - a_px) * area,
                "axon_diam (um)": axon_diam,
                "myelin_thickness (um)": (fibre_diam - axon_diam) / 2,
                "axonmyelin_area (um^2)": f_px * area,
                "axonmyelin_perimeter (um)": fibre.perimeter * pixel_size,
                "eccentricity": shape.eccentricity,
                "orientation": shape.orientation,
                "fiber_eccentricity": fibre.eccentricity,
                "fiber_orientation": fibre.orientation,
                "solidity": shape.solidity,
                "image_border_touching": i in touching,
                "bbox_min_y": min_y,
                "bbox_min_x": min_x,
                "bbox_max_y": max_y,
                "bbox_max_x": max_x,
                "axonmyelin_diam (um)": fibre_diam,
            }
        )
    return rows


def to_csv(rows: list[dict]) -> str:
    buffer = StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def inner(rows: list[dict]) -> list[dict]:
    """The fibres measured whole: not touching the image border."""
    return [r for r in rows if not r["image_border_touching"]]


def myelinated(rows: list[dict]) -> list[dict]:
    """Whole fibres with a sheath: those a g-ratio describes."""
    return [r for r in inner(rows) if r["myelin_area (um^2)"] > 0]


def compare(pred: list[dict], truth: list[dict]) -> dict[str, float | None]:
    """Means of axon diameter and g-ratio of predicted and true fibres, their absolute errors
    and the 1-Wasserstein distances between the distributions (None where a side is empty)."""
    out: dict[str, float | None] = {
        "n_axons": float(len(inner(pred))),
        "n_axons_truth": float(len(inner(truth))),
    }
    for name, column, pick in (
        ("axon_diam", "axon_diam (um)", inner),
        ("gratio", "gratio", myelinated),
    ):
        p = np.array([r[column] for r in pick(pred)])
        t = np.array([r[column] for r in pick(truth)])
        ok = p.size > 0 and t.size > 0
        out |= {
            f"{name}_mean": float(p.mean()) if p.size else None,
            f"{name}_mean_truth": float(t.mean()) if t.size else None,
            f"{name}_error": abs(float(p.mean() - t.mean())) if ok else None,
            f"{name}_wasserstein": float(wasserstein_distance(p, t)) if ok else None,
        }
    return out
