"""Morphometrics against hand-computed values on drawn fibres (discs in rings)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as components
from skimage.measure import regionprops
from skimage.segmentation import watershed

from axondeepsynth import morphometrics
from axondeepsynth.data.labels import AXON, MYELIN


def fibres(size: int, drawn: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Label map with a myelin ring of outer radius R around an axon disc of radius r, per
    (x, y, r, R)."""
    labels = np.zeros((size, size), np.uint8)
    for x, y, _, outer in drawn:
        cv2.circle(labels, (x, y), outer, MYELIN, -1)
    for x, y, r, _ in drawn:
        cv2.circle(labels, (x, y), r, AXON, -1)
    return labels


@pytest.mark.parametrize(("r", "outer"), [(12, 18), (20, 26), (30, 33)])
def test_a_drawn_fibre_measures_its_radii(r: int, outer: int) -> None:
    pixel_size = 0.05
    (row,) = morphometrics.measure(fibres(128, [(64, 60, r, outer)]), pixel_size)
    assert row["axon_diam (um)"] == pytest.approx(2 * r * pixel_size, rel=0.02)
    assert row["axonmyelin_diam (um)"] == pytest.approx(2 * outer * pixel_size, rel=0.02)
    assert row["myelin_thickness (um)"] == pytest.approx((outer - r) * pixel_size, rel=0.02)
    assert row["gratio"] == pytest.approx(r / outer, rel=0.02)
    assert (row["x0 (px)"], row["y0 (px)"]) == pytest.approx((64, 60), abs=0.01)
    assert not row["image_border_touching"]


def test_touching_sheaths_are_split_between_their_fibres() -> None:
    """Two equal fibres whose rings overlap: each keeps half the shared myelin, so both have
    the same thickness, a little under the drawn one."""
    rows = morphometrics.measure(fibres(160, [(50, 80, 20, 30), (104, 80, 20, 30)]), 0.1)
    assert len(rows) == 2
    a, b = (r["myelin_area (um^2)"] for r in rows)
    assert a == pytest.approx(b, rel=0.02)  # pixels equidistant from both go to one
    assert rows[0]["myelin_thickness (um)"] < 1.0 and rows[0]["gratio"] > 20 / 30


def test_fibres_on_the_border_are_flagged_and_left_out_of_summaries() -> None:
    labels = fibres(100, [(50, 50, 10, 15), (5, 50, 10, 15)])
    rows = morphometrics.measure(labels, 0.1)
    assert sorted(r["image_border_touching"] for r in rows) == [False, True]
    cmp = morphometrics.compare(rows, rows)
    assert cmp["n_axons"] == 1 and cmp["gratio_error"] == 0 and cmp["axon_diam_wasserstein"] == 0
    assert cmp["gratio_mean"] == pytest.approx(10 / 15, rel=0.02)


def test_compare_reports_the_error_of_the_means() -> None:
    truth = morphometrics.measure(fibres(200, [(60, 60, 20, 30), (140, 140, 20, 30)]), 0.1)
    pred = morphometrics.measure(fibres(200, [(60, 60, 16, 30), (140, 140, 16, 30)]), 0.1)
    cmp = morphometrics.compare(pred, truth)
    assert cmp["axon_diam_error"] == pytest.approx(0.8, rel=0.03)  # 2 x 4 px x 0.1 µm
    assert cmp["gratio_error"] == pytest.approx(20 / 30 - 16 / 30, rel=0.03)
    assert cmp["axon_diam_wasserstein"] == pytest.approx(cmp["axon_diam_error"], rel=1e-6)
    assert math.isclose(cmp["n_axons"], 2)


def test_no_axon_no_rows_and_no_means() -> None:
    assert morphometrics.measure(np.zeros((16, 16), np.uint8), 0.1) == []
    cmp = morphometrics.compare([], [])
    assert cmp["gratio_mean"] is None and cmp["axon_diam_error"] is None


ADS_COLUMNS = [
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
]


def test_csv_has_axondeepsegs_columns_in_its_order() -> None:
    rows = morphometrics.measure(fibres(64, [(32, 32, 8, 12)]), 0.1)
    header, line = morphometrics.to_csv(rows).splitlines()
    assert header.split(",")[: len(ADS_COLUMNS)] == ADS_COLUMNS
    assert line.count(",") == len(morphometrics.COLUMNS) - 1
    (row,) = rows
    assert row["axon_perimeter (um)"] == pytest.approx(2 * math.pi * 8 * 0.1, rel=0.1)
    assert row["axonmyelin_perimeter (um)"] == pytest.approx(2 * math.pi * 12 * 0.1, rel=0.1)
    assert row["eccentricity"] < 0.2 and row["fiber_eccentricity"] < 0.2
    assert row["solidity"] > 0.9
    assert (row["bbox_min_y"], row["bbox_min_x"], row["bbox_max_y"], row["bbox_max_x"]) == (
        20,
        20,
        45,
        45,
    )  # the fibre's


def test_axons_touching_at_a_corner_are_one_as_in_axondeepseg() -> None:
    labels = np.zeros((20, 20), np.uint8)
    labels[4:8, 4:8] = labels[8:12, 8:12] = 2  # two squares sharing one corner
    (row,) = morphometrics.measure(labels, 0.1)
    assert row["axon_area (um^2)"] == pytest.approx(32 * 0.01)


def regions_like_a_label_map(seed: int) -> tuple[np.ndarray, int]:
    """Touching ellipses, squares, lines and single pixels, some on the image's edge: watershed
    fibres of drawn axons, as `measure` makes them."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((120, 150), np.uint8)
    for _ in range(25):
        centre = (int(rng.integers(0, 150)), int(rng.integers(0, 120)))
        axes = (int(rng.integers(1, 14)), int(rng.integers(1, 14)))
        cv2.ellipse(labels, centre, axes, float(rng.uniform(0, 180)), 0, 360, MYELIN, -1)
        axes = (max(axes[0] // 2, 0), max(axes[1] // 2, 0))
        cv2.ellipse(labels, centre, axes, float(rng.uniform(0, 180)), 0, 360, AXON, -1)
    labels[66:76, 6:20] = 0
    labels[70, 10:16] = labels[71, 11:15] = AXON  # mirror-symmetric: a product moment of zero
    # whose rounding's sign sets orientation to +pi/2 or -pi/2
    labels[5:9, 5:9] = AXON
    labels[20, 30:40] = AXON
    labels[60, 2] = AXON
    axons, n = components(labels == AXON, connectivity=2, return_num=True)
    fibres = watershed(ndi.distance_transform_edt(labels != AXON), axons, mask=labels > 0)
    return fibres, n


@pytest.mark.parametrize("seed", range(4))
def test_shapes_are_skimages_regionprops_region_by_region(seed: int) -> None:
    """AxonDeepSeg measures with `regionprops` one region at a time; `shapes` measures every
    region at once and must give its numbers."""
    regions, n = regions_like_a_label_map(seed)
    ours = morphometrics.shapes(regions, n)
    props = regionprops(regions)
    assert [p.label for p in props] == list(range(1, n + 1))
    assert [(r.start, c.start, r.stop, c.stop) for r, c in ours.boxes] == [p.bbox for p in props]
    for name in ("centroid", "perimeter", "eccentricity", "orientation"):
        theirs = np.array([getattr(p, name) for p in props])
        np.testing.assert_allclose(getattr(ours, name), theirs, rtol=1e-9, atol=1e-9, err_msg=name)
