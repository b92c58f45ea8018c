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

The shape columns (perimeter, eccentricity, orientation) are `regionprops`' numbers, measured
for every region at once (`shapes`): AxonDeepSeg's loop over regions took half of a run's
evaluation.

Lengths are in µm and areas in µm² at the image's pixel size; column names are AxonDeepSeg's.
Fibres touching the image border are measured and flagged, and left out of the summaries. An
axon with no myelin is measured with a g-ratio of 1 (its fibre is the axon) and left out of the
g-ratio summaries (`myelinated`), where AxonDeepSeg's mean would turn NaN.
"""

from __future__ import annotations

import csv
import math
from io import StringIO
from typing import NamedTuple

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import wasserstein_distance
from skimage.measure import label as components
from skimage.measure import regionprops
from skimage.morphology import convex_hull_image
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


class Shapes(NamedTuple):
    """Shape columns of regions 1..n of a label image, at index label - 1: skimage's
    `regionprops` values (`perimeter` with 4-connectivity, in px), for all regions at once."""

    boxes: list[tuple[slice, slice]]  # the bounding boxes (rows, columns)
    centroid: np.ndarray  # [n, 2]: row, column
    perimeter: np.ndarray
    eccentricity: np.ndarray
    orientation: np.ndarray


# skimage.measure.perimeter's weights of a border pixel's code: 1 for itself, 2 per 4-neighbour
# and 10 per diagonal neighbour on the same region's border
_NEIGHBOURS = (
    (-1, 0, 2),
    (1, 0, 2),
    (0, -1, 2),
    (0, 1, 2),
    (-1, -1, 10),
    (-1, 1, 10),
    (1, -1, 10),
    (1, 1, 10),
)
_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_PERIMETER_WEIGHTS[[21, 33]] = math.sqrt(2)
_PERIMETER_WEIGHTS[[13, 23]] = (1 + math.sqrt(2)) / 2


def shapes(regions: np.ndarray, n: int) -> Shapes:
    """Bounding box, centroid, perimeter, eccentricity and orientation of regions 1..n of
    `regions` (0 is background), as skimage's `regionprops` measures each on its own, in a few
    passes over the image."""
    boxes = ndi.find_objects(regions, n)
    padded = np.pad(regions, 1)

    def beside(dy: int, dx: int, image: np.ndarray = padded) -> np.ndarray:
        h, w = regions.shape
        return image[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    # border: a region's pixels with a 4-neighbour outside it (the image's edge included)
    inside = regions > 0
    for dy, dx, _ in _NEIGHBOURS[:4]:
        inside &= beside(dy, dx) == regions
    border = (regions > 0) & ~inside
    code = border.astype(np.int64)
    padded_border = np.pad(border, 1)
    for dy, dx, weight in _NEIGHBOURS:
        code += weight * (beside(dy, dx, padded_border) & (beside(dy, dx) == regions))
    histogram = np.bincount(regions[border] * 50 + code[border], minlength=(n + 1) * 50)
    perimeter = histogram.reshape(n + 1, 50)[1:] @ _PERIMETER_WEIGHTS

    # second central moments of each region's pixels -> its inertia tensor [[a, b], [b, c]]
    ys, xs = np.nonzero(regions)
    label = regions[ys, xs]
    count = np.bincount(label, minlength=n + 1)[1:]
    centroid = np.stack([np.bincount(label, v, n + 1)[1:] / count for v in (ys, xs)], -1)
    dy, dx = ys - centroid[label - 1, 0], xs - centroid[label - 1, 1]
    a, mu11, c = (np.bincount(label, w, n + 1)[1:] / count for w in (dx * dx, dy * dx, dy * dy))
    b = -mu11  # as skimage negates it: the sign of a zero picks orientation's +-pi/2
    tensor = np.stack([np.stack([a, b], -1), np.stack([b, c], -1)], -2)
    small, large = np.clip(np.linalg.eigvalsh(tensor), 0, None).T
    with np.errstate(divide="ignore", invalid="ignore"):
        eccentricity = np.where(large == 0, 0.0, np.sqrt(1 - small / large))
    orientation = np.where(
        a - c == 0, np.where(b < 0, math.pi / 4, -math.pi / 4), 0.5 * np.arctan2(-2 * b, c - a)
    )
    # where b is zero but for rounding (symmetric regions), its sign picks +-pi/2 or +-pi/4:
    # skimage's own sums decide, as AxonDeepSeg's
    for i in np.flatnonzero(np.abs(b) <= 1e-9 * (a + c)).tolist():
        region = (regions[boxes[i]] == i + 1).astype(np.uint8)
        orientation[i] = regionprops(region)[0].orientation
    return Shapes(boxes, centroid, perimeter, eccentricity, orientation)


def measure(labels: np.ndarray, pixel_size: float) -> list[dict[str, float]]:
    """One row per axon of a label map (0 background, 1 myelin, 2 axon) at `pixel_size` µm/px."""
    axon = labels == AXON
    axons, n = components(axon, connectivity=2, return_num=True)
    if n == 0:
        return []
    fibres = watershed(ndi.distance_transform_edt(~axon), axons, mask=axon | (labels == MYELIN))
    axon_px = np.bincount(axons.ravel(), minlength=n + 1)[1:]
    fibre_px = np.bincount(fibres.ravel(), minlength=n + 1)[1:]
    edge = np.zeros_like(axon)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    touching = set(np.unique(fibres[edge])) - {0}
    area = pixel_size**2
    axon_shape, fibre_shape = shapes(axons, n), shapes(fibres, n)
    solidity = [
        a_px / np.count_nonzero(convex_hull_image(axons[box] == i))
        for i, (box, a_px) in enumerate(zip(axon_shape.boxes, axon_px.tolist(), strict=True), 1)
    ]
    rows = []
    for i, (a_px, f_px, (y, x)) in enumerate(
        zip(axon_px.tolist(), fibre_px.tolist(), axon_shape.centroid.tolist(), strict=True)
    ):
        axon_diam = 2 * math.sqrt(a_px * area / math.pi)
        fibre_diam = 2 * math.sqrt(f_px * area / math.pi)
        rows_box, cols_box = fibre_shape.boxes[i]
        rows.append(
            {
                "x0 (px)": float(x),
                "y0 (px)": float(y),
                "gratio": axon_diam / fibre_diam,
                "axon_area (um^2)": a_px * area,
                "axon_perimeter (um)": float(axon_shape.perimeter[i]) * pixel_size,
                "myelin_area (um^2)": (f_px - a_px) * area,
                "axon_diam (um)": axon_diam,
                "myelin_thickness (um)": (fibre_diam - axon_diam) / 2,
                "axonmyelin_area (um^2)": f_px * area,
                "axonmyelin_perimeter (um)": float(fibre_shape.perimeter[i]) * pixel_size,
                "eccentricity": float(axon_shape.eccentricity[i]),
                "orientation": float(axon_shape.orientation[i]),
                "fiber_eccentricity": float(fibre_shape.eccentricity[i]),
                "fiber_orientation": float(fibre_shape.orientation[i]),
                "solidity": solidity[i],
                "image_border_touching": i + 1 in touching,
                "bbox_min_y": rows_box.start,
                "bbox_min_x": cols_box.start,
                "bbox_max_y": rows_box.stop,
                "bbox_max_x": cols_box.stop,
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
