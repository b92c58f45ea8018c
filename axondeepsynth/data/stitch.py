"""Overlapping tiles for whole-image inference and the blended stitch that undoes them.

Tiles start every `tile - overlap` pixels; the last one is flush with the border, and images
smaller than a tile are reflect-padded. Each tile's output is weighted by a window that ramps up
over the overlap and is 1 inside, so the stitch `sum(w * y) / sum(w)` has no seams and reproduces
the input exactly for an identity model. Tiles are streamed in batches: only one batch of
activations exists at a time, plus the float32 output and weight canvases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile start offsets along one axis of `length` (>= tile) pixels."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    offsets = list(range(0, length - tile, stride))
    return offsets + [length - tile]


def window(tile: int, overlap: int) -> np.ndarray:
    """2-D blending weights: linear ramps over the overlap, strictly positive everywhere."""
    ramp = np.ones(tile, np.float32)
    if overlap > 0:
        edge = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        ramp[:overlap] = edge
        ramp[tile - overlap :] = np.minimum(ramp[tile - overlap :], edge[::-1])
    return np.outer(ramp, ramp)


def gaussian_window(tile: int, sigma_scale: float = 1 / 8) -> np.ndarray:
    """nnU-Net's importance map: a Gaussian of sigma tile/8 centred on the tile, scaled to a
    maximum of 1 and floored at its smallest non-zero value, so every pixel counts."""
    axis = np.arange(tile, dtype=np.float64) - (tile - 1) / 2
    g = np.exp(-(axis**2) / (2 * (tile * sigma_scale) ** 2))
    w = np.outer(g, g)
    w /= w.max()
    return np.maximum(w, w[w > 0].min()).astype(np.float32)


def grid(shape: tuple[int, int], tile: int, overlap: int) -> list[tuple[int, int]]:
    """Top-left corners of every tile covering an image of `shape` (padded to >= tile)."""
    h, w = (max(s, tile) for s in shape)
    return [(y, x) for y in starts(h, tile, overlap) for x in starts(w, tile, overlap)]


def _pad(image: np.ndarray, tile: int) -> np.ndarray:
    h, w = image.shape
    ph, pw = max(0, tile - h), max(0, tile - w)
    if ph == 0 and pw == 0:
        return image
    mode = "reflect" if ph < h and pw < w else "symmetric"
    return np.pad(image, ((0, ph), (0, pw)), mode=mode)


def batches(
    image: np.ndarray, tile: int, overlap: int, batch_size: int
) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
    """Yield (corners, tiles[B, 1, tile, tile]) over a 2-D image."""
    padded = _pad(image, tile)
    corners = grid(image.shape, tile, overlap)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i : i + batch_size]
        tiles = np.stack([padded[y : y + tile, x : x + tile] for y, x in chunk])[:, None]
        yield chunk, tiles


def sliding_window(
    image: np.ndarray,
    fn: Callable[[torch.Tensor], torch.Tensor],
    tile: int,
    overlap: int,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    on_batch: Callable[[int], None] | None = None,
    blend: str = "linear",
) -> np.ndarray:
    """Apply `fn` ([B,1,t,t] -> [B,C,t,t]) over overlapping tiles of a 2-D image; return [C,H,W].

    Tiles are blended by `window` ramps (`linear`, exact for an identity model) or by
    `gaussian_window` (`gaussian`: tile centres, where the model saw most context, weigh most).
    `on_batch(n_tiles)` is called after each batch (progress bars).
    """
    if not 0 <= 2 * overlap < tile:
        raise ValueError(f"overlap {overlap} must be below half the tile size {tile}")
    h, w = image.shape
    ph, pw = max(h, tile), max(w, tile)
    weights = gaussian_window(tile) if blend == "gaussian" else window(tile, overlap)
    out: np.ndarray | None = None
    norm = np.zeros((ph, pw), np.float32)
    for corners, tiles in batches(image, tile, overlap, batch_size):
        x = torch.from_numpy(tiles).to(device=device, dtype=dtype)
        y = fn(x).float().cpu().numpy()
        if out is None:
            out = np.zeros((y.shape[1], ph, pw), np.float32)
        for (r, c), y_tile in zip(corners, y, strict=True):
            out[:, r : r + tile, c : c + tile] += y_tile * weights
            norm[r : r + tile, c : c + tile] += weights
        if on_batch:
            on_batch(len(corners))
    return (out / norm)[:, :h, :w]


Slices = tuple[slice, slice]


def blocks(shape: tuple[int, int], block: int, margin: int) -> Iterator[tuple[Slices, ...]]:
    """Cover an image of `shape` with cores of at most `block` px a side, each read with
    `margin` px of context around it (clipped at the border): yield (region, core, inner), the
    region to read, the core it decides, and that core within the region. An image that fits
    in one block is one region: itself."""
    h, w = shape
    for y in range(0, h, block):
        for x in range(0, w, block):
            y1, x1 = min(y + block, h), min(x + block, w)
            ry, rx = max(0, y - margin), max(0, x - margin)
            region = (slice(ry, min(h, y1 + margin)), slice(rx, min(w, x1 + margin)))
            inner = (slice(y - ry, y1 - ry), slice(x - rx, x1 - rx))
            yield region, (slice(y, y1), slice(x, x1)), inner


def count(shape: tuple[int, int], tile: int, overlap: int) -> int:
    """Number of tiles `sliding_window` runs on an image of `shape`."""
    return len(grid(shape, tile, overlap))
