"""AxonDeepSeg mask conventions <-> the internal label map (0 background, 1 myelin, 2 axon)."""

from __future__ import annotations

import numpy as np

BACKGROUND, MYELIN, AXON = 0, 1, 2
CLASS_NAMES = {BACKGROUND: "background", MYELIN: "myelin", AXON: "axon"}


def from_axonmyelin(mask: np.ndarray) -> np.ndarray:
    """0/127/255 axonmyelin mask -> labels, thresholded as AxonDeepSeg does.

    Myelin is 100..200 and axon > 200, so anti-aliased edges fall into a class.
    """
    labels = np.zeros(mask.shape, np.uint8)
    labels[(mask >= 100) & (mask <= 200)] = MYELIN
    labels[mask > 200] = AXON
    return labels


def from_masks(axon: np.ndarray | None, myelin: np.ndarray | None) -> np.ndarray:
    """Separate binary (0/255) axon and myelin masks -> labels; axon wins where both are set."""
    shape = (axon if axon is not None else myelin).shape
    labels = np.zeros(shape, np.uint8)
    if myelin is not None:
        labels[myelin > 127] = MYELIN
    if axon is not None:
        labels[axon > 127] = AXON
    return labels


def to_axonmyelin(labels: np.ndarray) -> np.ndarray:
    """Labels -> AxonDeepSeg's 0/127/255 axonmyelin mask."""
    return np.choose(labels, np.array([0, 127, 255], np.uint8)).astype(np.uint8)


def to_masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Labels -> AxonDeepSeg's three masks keyed by `axon`, `myelin`, `axonmyelin`."""
    return {
        "axon": np.where(labels == AXON, 255, 0).astype(np.uint8),
        "myelin": np.where(labels == MYELIN, 255, 0).astype(np.uint8),
        "axonmyelin": to_axonmyelin(labels),
    }


def axon_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent diameters `sqrt(4 area / pi)` in pixels of the axons (8-connected components
    of the axon class) of a label map, as AxonDeepSeg's morphometrics define them."""
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats((labels == AXON).astype(np.uint8), 8)
    area = stats[1:n, cv2.CC_STAT_AREA].astype(np.float64)
    return np.sqrt(4 * area / np.pi)
