"""AxonDeepSeg mask conventions <-> the internal label map (0 background, 1 myelin, 2 axon)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BACKGROUND, MYELIN, AXON = 0, 1, 2
IGNORE = 255  # a training label no loss or score counts (a teacher's unsure pixels)
CLASS_NAMES = {BACKGROUND: "background", MYELIN: "myelin", AXON: "axon"}


def from_axonmyelin(mask: np.ndarray) -> np.ndarray:
    """0/127/255 axonmyelin mask -> labels, thresholded as AxonDeepSeg does.

    Myelin is 100..200 and axon > 200, so anti-aliased edges fall into a class.
    """
    labels = np.zeros(mask.shape, np.uint8)
    labels[(mask >= 100) & (mask <= 200)] = MYELIN
    labels[mask > 200] = AXON
    return labels


class MaskError(ValueError):
    """A mask whose values fit no convention: `problem` and `fix`, for the caller to name the
    file with."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(problem)


def _values(mask: np.ndarray) -> tuple[set[int], str]:
    values = np.unique(mask).tolist()
    shown = str(values[:8])[:-1] + (", ...]" if len(values) > 8 else "]")
    return set(values), shown


def _mostly(mask: np.ndarray, allowed: tuple[int, ...]) -> bool:
    """At least 99% of pixels take allowed values: a clean mask with anti-aliased edges."""
    return float(np.isin(mask, allowed).mean()) >= 0.99


def read_binary(mask: np.ndarray, kind: str) -> tuple[np.ndarray, str]:
    """A separate axon or myelin mask -> (boolean mask, how it was read); 0/255 and 0/1 are
    accepted, anything else is refused rather than guessed."""
    values, shown = _values(mask)
    if values <= {0, 255}:
        return mask > 127, "0/255"
    if values <= {0, 1}:
        return mask > 0, "0/1"
    if 127 in values and values <= {0, 127, 255}:
        raise MaskError(
            f"{kind} mask has the values {shown}: it looks like an axonmyelin mask",
            f"name it <image>_seg-axonmyelin.png, or save the {kind} mask as 0/255",
        )
    if min(values - {0}) > 127 or _mostly(mask, (0, 255)):
        return mask > 127, f"{shown} thresholded at 128"
    raise MaskError(
        f"{kind} mask has the values {shown}, not a binary mask (0/255 or 0/1)",
        f"save the {kind} mask with 0 for background and 255 for {kind}",
    )


def read_axonmyelin(mask: np.ndarray) -> tuple[np.ndarray, str]:
    """An axonmyelin mask -> (labels, how it was read): AxonDeepSeg's 0/127/255 or a 0/1/2
    label map; a 0/1 mask is ambiguous and refused."""
    values, shown = _values(mask)
    fix = "save it as 0/127/255 (background/myelin/axon), or a binary mask as _seg-axon/_seg-myelin"
    if values <= {0, 1, 2} and 2 in values:
        return mask.astype(np.uint8), "0/1/2"
    if values == {0, 1}:
        raise MaskError(f"axonmyelin mask has only the values {shown}: axon or myelin?", fix)
    if min(values - {0}, default=255) >= 100:  # AxonDeepSeg's bands take anti-aliased edges
        how = "0/127/255" if values <= {0, 127, 255} else f"{shown} as myelin 100-200, axon >200"
        return from_axonmyelin(mask), how
    raise MaskError(f"axonmyelin mask has the values {shown}, not 0/127/255", fix)


def implausible(labels: np.ndarray) -> list[str]:
    """What looks wrong with a label map that decoded cleanly (for `inspect` to flag)."""
    import cv2

    found = []
    for cls in (MYELIN, AXON):
        fraction = float((labels == cls).mean())
        if fraction > 0.95:
            found.append(f"{CLASS_NAMES[cls]} covers {fraction:.0%} of the image")
    axon, myelin = (labels == AXON).astype(np.uint8), (labels == MYELIN).astype(np.uint8)
    if axon.any() and myelin.any():
        n, components = cv2.connectedComponents(axon, connectivity=8)
        near_myelin = cv2.dilate(myelin, np.ones((5, 5), np.uint8)) > 0
        alone = (n - 1) - len(set(np.unique(components[near_myelin]).tolist()) - {0})
        if alone > (n - 1) / 2:
            found.append(
                f"{alone} of {n - 1} axons touch no myelin: are the masks from this image "
                "and not swapped?"
            )
    return found


def from_masks(axon: np.ndarray | None, myelin: np.ndarray | None) -> np.ndarray:
    """Separate axon and myelin masks, already read by `read_binary` (non-zero = set) -> labels;
    axon wins where both are set."""
    shape = (axon if axon is not None else myelin).shape
    labels = np.zeros(shape, np.uint8)
    if myelin is not None:
        labels[myelin.astype(bool)] = MYELIN
    if axon is not None:
        labels[axon.astype(bool)] = AXON
    return labels


def to_axonmyelin(labels: np.ndarray) -> np.ndarray:
    """Labels -> AxonDeepSeg's 0/127/255 axonmyelin mask (a byte a pixel all along: np.choose
    took eight, 3.2 GB more on a 20000² mosaic)."""
    mask = np.zeros(labels.shape, np.uint8)
    mask[labels == MYELIN] = 127
    mask[labels == AXON] = 255
    return mask


def to_masks(labels: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """Labels -> AxonDeepSeg's three uint8 masks (`axon`, `myelin`, `axonmyelin`), made one at
    a time so that a mosaic's masks are written without holding all three."""
    on, off = np.uint8(255), np.uint8(0)
    yield "axon", np.where(labels == AXON, on, off)
    yield "myelin", np.where(labels == MYELIN, on, off)
    yield "axonmyelin", to_axonmyelin(labels)


def axon_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent diameters `sqrt(4 area / pi)` in pixels of the axons (8-connected components
    of the axon class) of a label map, as AxonDeepSeg's morphometrics define them."""
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats((labels == AXON).astype(np.uint8), 8)
    area = stats[1:n, cv2.CC_STAT_AREA].astype(np.float64)
    return np.sqrt(4 * area / np.pi)
