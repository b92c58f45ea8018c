"""A trained segmentation proxy of either backend, loaded from its checkpoint file."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from axondeepsynth.training.segmenter import Segmenter


class Proxy(Protocol):
    def predict_proba(
        self, image: np.ndarray, tile: int, overlap: int, batch_size: int
    ) -> np.ndarray:
        """Class probabilities [C, H, W] of a whole HxW image in [0, 1]."""
        ...


def load(
    path: str | Path,
    device: str = "cpu",
    mirroring: bool = True,
    window: str = "gaussian",
    precision: str = "32",
) -> Proxy:
    """Lightning's `.ckpt` or an nnU-Net fold's `.pth`, predicting with test-time mirroring
    or not and (Lightning; nnU-Net's is Gaussian, its own precision) the given tile blending
    window and precision (32, or bf16 autocast)."""
    if Path(path).suffix == ".pth":
        from axondeepsynth.training.nnunet import Proxy as NnUNetProxy

        return NnUNetProxy(path, device, mirroring)
    model = Segmenter.load_from_checkpoint(path, map_location=device, weights_only=True)
    model.tta_flips, model.window = mirroring, window  # how to apply it, not what it is
    model.bf16 = precision == "bf16"
    return model


def ensemble(
    members: list[tuple[Proxy, list[np.ndarray]]], tile: int, overlap: int, batch_size: int
) -> np.ndarray:
    """Class probabilities [C, H, W] averaged over members, each first averaged over the
    inputs it is shown (the image, or the draws of its translation): a member weighs once."""
    return np.mean(
        [
            np.mean([m.predict_proba(x, tile, overlap, batch_size) for x in shown], axis=0)
            for m, shown in members
        ],
        axis=0,
    )


def resized(probs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Probabilities [C, h, w] linearly resized to [C, *shape]."""
    if probs.shape[1:] == tuple(shape):
        return probs
    probs = cv2.resize(np.moveaxis(probs, 0, -1), shape[::-1], interpolation=cv2.INTER_LINEAR)
    return np.moveaxis(probs, -1, 0)
