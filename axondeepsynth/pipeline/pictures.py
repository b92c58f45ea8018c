"""Pictures a person judges by eye: image | ground truth | pseudo label, as colour overlays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from axondeepsynth.data.labels import AXON, MYELIN
from axondeepsynth.io import write_bytes

COLOURS = {MYELIN: (0.15, 0.45, 1.0), AXON: (1.0, 0.35, 0.1)}  # RGB: myelin blue, axon orange


def overlay(image: np.ndarray, labels: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    """RGB float image: gray image with each class tinted (unchanged where labels is None)."""
    rgb = np.repeat(image[..., None], 3, axis=-1).astype(np.float32)
    if labels is not None:
        for cls, colour in COLOURS.items():
            mask = labels == cls
            rgb[mask] = (1 - alpha) * rgb[mask] + alpha * np.array(colour, np.float32)
    return rgb


def save_comparison(
    path: Path,
    image: np.ndarray,
    truth: np.ndarray | None,
    pred: np.ndarray,
    confidence: np.ndarray | None = None,
    max_side: int = 768,
) -> Path:
    """Save `image | truth overlay | prediction overlay [| confidence, white = sure]` side by
    side as a PNG."""
    panels = [overlay(image, None), overlay(image, truth), overlay(image, pred)]
    if confidence is not None:
        panels.append(np.repeat(confidence[..., None], 3, axis=-1).astype(np.float32))
    strip = np.concatenate(
        [np.pad(p, ((0, 0), (0, 4), (0, 0)), constant_values=1.0) for p in panels], axis=1
    )
    scale = min(1.0, max_side / max(image.shape))
    if scale < 1.0:
        strip = cv2.resize(strip, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    bgr = (np.clip(strip, 0, 1)[..., ::-1] * 255).round().astype(np.uint8)
    return write_bytes(path, cv2.imencode(".png", bgr)[1].tobytes())
