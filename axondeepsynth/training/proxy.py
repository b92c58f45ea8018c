"""A trained segmentation proxy of either backend, loaded from its checkpoint file."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from axondeepsynth.training.segmenter import Segmenter


class Proxy(Protocol):
    def predict_proba(
        self, image: np.ndarray, tile: int, overlap: int, batch_size: int
    ) -> np.ndarray:
        """Class probabilities [C, H, W] of a whole HxW image in [0, 1]."""
        ...


def load(path: str | Path, device: str = "cpu", mirroring: bool = True) -> Proxy:
    """Lightning's `.ckpt` (which keeps its own test-time flips) or an nnU-Net fold's `.pth`."""
    if Path(path).suffix == ".pth":
        from axondeepsynth.training.nnunet import Proxy as NnUNetProxy

        return NnUNetProxy(path, device, mirroring)
    return Segmenter.load_from_checkpoint(path, map_location=device, weights_only=True)
