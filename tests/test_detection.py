"""Axon detection by AxonDeepSeg's rule: centroids of predicted axons (over 2 px) in true axons,
one hit per true axon, extra centroids as splits, the rest false positives."""

from __future__ import annotations

import numpy as np
import pytest

from axondeepsynth import detection


def disc(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_found_split_missed_false_positive_and_specks() -> None:
    shape = (80, 80)
    a, b, c = disc(shape, (15, 15), 8), disc(shape, (15, 50), 6), disc(shape, (55, 20), 7)
    truth = a | b | c
    pred = a.copy()
    pred[:, 15] = False  # a, cut in two: found once, split once
    pred |= b  # found
    pred[55, 20:22] = True  # a 2-pixel speck in c: too small to count, so c is missed
    pred |= disc(shape, (60, 60), 5)  # in no true axon
    counts = detection.counts(pred, truth)
    assert counts == {"found": 2, "false_positives": 1, "splits": 1, "n_true": 3, "n_pred": 4}
    scores = detection.scores([counts, counts])
    assert scores["sensitivity"] == pytest.approx(2 / 3)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["diffusion"] == pytest.approx(1 / 3)
    assert scores["count_ratio"] == pytest.approx(4 / 3)


def test_axons_touching_at_a_corner_are_one_and_empty_masks_score_none() -> None:
    pred = np.zeros((10, 10), bool)
    pred[2:4, 2:4] = pred[4:6, 4:6] = True  # two squares sharing a corner
    counts = detection.counts(pred, pred)
    assert counts["n_pred"] == counts["n_true"] == counts["found"] == 1
    empty = detection.counts(np.zeros((10, 10), bool), np.zeros((10, 10), bool))
    assert detection.scores([empty]) == {
        "sensitivity": None,
        "precision": None,
        "diffusion": None,
        "count_ratio": None,
    }
