"""Pictures a person judges by eye: image | ground truth | pseudo label as colour overlays, and
the distributions of the fibres measured in them."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import cv2
import numpy as np

from axondeepsynth import morphometrics
from axondeepsynth.data.labels import AXON, MYELIN
from axondeepsynth.io import write_bytes
from axondeepsynth.strategies import STRATEGIES

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


def morphometrics_figure(fibres: dict[str, list[dict]], truth: list[dict]) -> bytes:
    """Distributions of g-ratio and axon diameter of each strategy's whole fibres (all folds)
    and of U's labels, as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), dpi=110)
    FigureCanvasAgg(fig)
    panels = (
        ("gratio", "g-ratio", morphometrics.myelinated),
        ("axon_diam (um)", "axon diameter (µm)", morphometrics.inner),
    )
    for ax, (column, title, pick) in zip(fig.subplots(1, 2), panels, strict=True):
        series = {name: [r[column] for r in pick(rows)] for name, rows in fibres.items()}
        if truth:
            series["U's labels"] = [r[column] for r in pick(truth)]
        values = [v for vs in series.values() for v in vs]
        if not values:
            continue
        bins = np.linspace(min(values), max(values), 30)
        for name, vs in series.items():
            colour = "black" if name == "U's labels" else STRATEGIES[name].color
            ax.hist(
                vs,
                bins,
                histtype="step",
                density=True,
                color=colour,
                lw=1.6,
                label=f"{name} ({len(vs)})",
            )
        ax.set_xlabel(title)
        ax.set_yticks([])
    fig.axes[0].legend(fontsize=8, frameon=False)
    fig.suptitle("Per-axon morphometrics: pseudo labels vs U's labels (fibres not on the border)")
    fig.tight_layout()
    buffer = BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
