"""Pixel-size harmonisation: bring each domain to a common physical scale before tiling."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from axondeepsynth.data.records import Sample
from axondeepsynth.errors import DataError


def scale_factor(pixel_size: float, target_pixel_size: float | None, scale: float | None) -> float:
    """Resize factor for one image: an explicit `scale` wins, else pixel_size / target."""
    if scale is not None:
        return float(scale)
    if target_pixel_size is None:
        return 1.0
    return pixel_size / target_pixel_size


def resample(sample: Sample, factor: float, method: str = "area") -> Sample:
    """Resize image (`area`: area when shrinking, cubic when growing; `nearest`: nearest
    neighbour, as the published pipeline does) and labels (nearest neighbour)."""
    if abs(factor - 1.0) < 1e-9:
        return sample
    h, w = sample.image.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if min(size) < 16 or max(size) > 100_000:
        raise DataError(
            sample.source,
            f"resampling by {factor:.3g} (pixel size {sample.pixel_size:g} µm) would make this "
            f"{w}x{h} px image {size[0]}x{size[1]} px",
            "check its pixel size and the domain's scale / data.target_pixel_size (all in µm)",
        )
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    if method == "nearest":
        interp = cv2.INTER_NEAREST
    image = np.clip(cv2.resize(sample.image, size, interpolation=interp), 0.0, 1.0)
    labels = None
    if sample.labels is not None:
        labels = cv2.resize(sample.labels, size, interpolation=cv2.INTER_NEAREST)
    return replace(
        sample, image=image.astype(np.float32), labels=labels, pixel_size=sample.pixel_size / factor
    )
