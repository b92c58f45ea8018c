"""Pseudo labels cleaned axon by axon: myelin grown to where the image shows it, holes filled,
specks and axons no myelin wraps dropped, each switch alone; off, the labels are left as they
are."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compose_cfg
from scipy import ndimage as ndi

from axondeepsynth.data.labels import AXON, BACKGROUND, MYELIN
from axondeepsynth.errors import ConfigError
from axondeepsynth.postprocess import PostprocessConfig, _morph, clean

FLAT = np.zeros((60, 60), np.float32)  # an image that says nothing


def ring(labels: np.ndarray, centre: tuple[int, int], r_axon: int, r_fibre: int) -> None:
    yy, xx = np.mgrid[: labels.shape[0], : labels.shape[1]]
    d2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    labels[d2 <= r_fibre**2] = MYELIN
    labels[d2 <= r_axon**2] = AXON


def field() -> np.ndarray:
    labels = np.zeros((60, 60), np.uint8)
    ring(labels, (15, 15), 6, 10)  # a fibre
    labels[15, 15] = labels[15, 16] = BACKGROUND  # with a dark organelle in its axon
    labels[40:50, 40:50] = AXON  # extracellular space: nothing wraps it
    labels[5, 50] = AXON  # a speck
    return labels


def test_each_switch_alone() -> None:
    labels, px = field(), 0.1
    assert (clean(labels, px, PostprocessConfig(), FLAT) == labels).all()
    filled = clean(labels, px, PostprocessConfig(fill_holes=True), FLAT)
    assert filled[15, 15] == filled[15, 16] == AXON and (filled != labels).sum() == 2
    no_specks = clean(labels, px, PostprocessConfig(min_axon_area_um2=0.05), FLAT)  # 5 px
    assert no_specks[5, 50] == BACKGROUND and (no_specks[40:50, 40:50] == AXON).all()
    wrapped = clean(labels, px, PostprocessConfig(drop_unmyelinated=True), FLAT)
    assert (wrapped[40:50, 40:50] == BACKGROUND).all() and wrapped[5, 50] == BACKGROUND
    assert (wrapped[:30, :30] == labels[:30, :30]).all()  # the fibre stays, untouched


def test_an_axon_whose_myelin_lies_beyond_the_ring_is_dropped() -> None:
    labels = np.zeros((40, 40), np.uint8)
    labels[10:20, 10:20] = AXON
    labels[10:20, 25:30] = MYELIN  # 6 px = 0.6 µm away
    near, far = (
        PostprocessConfig(drop_unmyelinated=True, ring_um=0.7),
        PostprocessConfig(drop_unmyelinated=True, ring_um=0.3),
    )
    assert (clean(labels, 0.1, near, FLAT[:40, :40]) == labels).all()
    assert not (clean(labels, 0.1, far, FLAT[:40, :40]) == AXON).any()


def test_an_axon_that_myelin_wraps_only_in_part_is_dropped() -> None:
    """Extracellular space between fibres touches their myelin on one side: its ring (within
    ring_um of its border) is part myelin, part background; a fibre's is all myelin."""
    labels = np.zeros((60, 60), np.uint8)
    ring(labels, (15, 15), 6, 10)  # a fibre: its ring is all myelin
    ring(labels, (40, 40), 6, 10)  # a second one
    labels[11:20, 26:32] = AXON  # a dark gap that touches the first fibre's myelin on its left
    ring_of_gap = np.zeros_like(labels, bool)  # 0.3 µm around it (3 px, square corners)
    ring_of_gap[8:23, 23:35] = True
    ring_of_gap[11:20, 26:32] = False
    covered = (labels[ring_of_gap] == MYELIN).mean()
    assert 0.1 < covered < 0.3  # the drawing is what the test is about
    kept = clean(labels, 0.1, PostprocessConfig(min_ring_myelin=covered / 2), FLAT)
    assert (kept == labels).all()
    for least in (covered * 1.5, 0.9):
        cleaned = clean(labels, 0.1, PostprocessConfig(min_ring_myelin=least), FLAT)
        assert (cleaned[11:20, 26:32] == BACKGROUND).all()
        cleaned[11:20, 26:32] = AXON
        assert (cleaned == labels).all()  # the fibres stay, untouched


def test_a_negative_size_or_ring_is_refused_naming_the_key() -> None:
    for key in (
        "min_axon_area_um2=-1",
        "ring_um=0",
        "myelin_from_image_um=-0.1",
        "min_ring_myelin=1.5",
        "min_ring_myelin=-0.1",
    ):
        with pytest.raises(ConfigError, match=f"segmenter.predict.postprocess.{key.split('=')[0]}"):
            compose_cfg("+experiment=demo", f"segmenter.predict.postprocess.{key}")


def test_myelin_grows_to_where_the_image_shows_it_and_no_further() -> None:
    """A fibre whose dark myelin spans radii 6-12 px, labelled as if its edge were at 9 (a
    proxy that draws fibres small): growth takes the rest of the ring outward, not the bright
    background beyond, leaves the axon as it was, and goes only as far as it is allowed."""
    truth = np.zeros((60, 60), np.uint8)
    ring(truth, (30, 30), 6, 12)
    levels = np.array([0.8, 0.1, 0.5], np.float32)  # background, myelin, axon
    image = levels[truth] + np.random.default_rng(0).normal(0, 0.05, truth.shape).astype(np.float32)
    small = np.zeros_like(truth)
    ring(small, (30, 30), 6, 9)
    grown = clean(small, 0.1, PostprocessConfig(myelin_from_image_um=0.5), image)  # 5 px
    assert ((grown == MYELIN) == (truth == MYELIN)).mean() > 0.995
    assert not ((grown == MYELIN) & (truth == BACKGROUND)).any()  # not beyond the fibre
    assert ((grown == AXON) == (small == AXON)).all()
    one = clean(small, 0.1, PostprocessConfig(myelin_from_image_um=0.1), image)  # 1 px
    assert (small == MYELIN).sum() < (one == MYELIN).sum() < (grown == MYELIN).sum()
    assert not ((one == MYELIN) & (truth == BACKGROUND)).any()
    assert (clean(small, 0.1, PostprocessConfig(), image) == small).all()


@pytest.mark.parametrize("steps", [1, 2])
def test_opencv_morphology_is_scipys_at_the_borders_too(steps: int) -> None:
    """The myelin growth erodes and dilates with OpenCV; scipy's answer, outside False."""
    mask = np.random.default_rng(steps).random((40, 50)) < 0.93
    mask[:, :3] = True  # touching the border
    square = np.ones((3, 3), bool)
    erode = ndi.binary_erosion(mask, square, iterations=steps)
    dilate = ndi.binary_dilation(mask, square, iterations=steps)
    assert np.array_equal(_morph(mask, steps), erode) and erode.any()
    assert np.array_equal(_morph(mask, steps, dilate=True), dilate)
