"""Tiles -> stitch must be seamless and exact, including images not a multiple of the tile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from axondeepsynth.data.stitch import count, grid, sliding_window, starts, window

SHAPES = [(64, 64), (100, 70), (300, 517), (37, 200), (5, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_constant_survives_exactly(shape: tuple[int, int]) -> None:
    out = sliding_window(
        np.full(shape, 0.37, np.float32), lambda x: x, tile=64, overlap=16, batch_size=3
    )
    assert out.shape == (1, *shape)
    assert np.abs(out - 0.37).max() < 1e-6


@pytest.mark.parametrize("shape", SHAPES)
def test_identity_reproduces_any_image(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    out = sliding_window(image, lambda x: x, tile=64, overlap=24, batch_size=5)
    np.testing.assert_allclose(out[0], image, atol=1e-6)


def test_pointwise_model_has_no_seams() -> None:
    """A per-pixel model gives the same answer tiled or whole: no tile border leaves a trace."""
    image = np.random.default_rng(1).random((150, 211), dtype=np.float32)
    out = sliding_window(image, lambda x: torch.cat([x * 2, x**2], dim=1), tile=48, overlap=12)
    np.testing.assert_allclose(out[0], image * 2, atol=1e-6)
    np.testing.assert_allclose(out[1], image**2, atol=1e-6)


def test_grid_covers_every_pixel_once_or_more() -> None:
    shape, tile, overlap = (130, 301), 64, 16
    cover = np.zeros(shape, int)
    for y, x in grid(shape, tile, overlap):
        cover[y : y + tile, x : x + tile] += 1
    assert cover.min() >= 1 and count(shape, tile, overlap) == len(grid(shape, tile, overlap))
    assert starts(301, 64, 16)[-1] == 301 - 64 and starts(40, 64, 16) == [0]


def test_window_positive_and_flat_inside() -> None:
    w = window(64, 16)
    assert w.min() > 0 and w[16:48, 16:48].min() == 1.0


def test_overlap_must_fit() -> None:
    with pytest.raises(ValueError, match="overlap"):
        sliding_window(np.zeros((10, 10), np.float32), lambda x: x, tile=16, overlap=8)
