"""Clean a predicted label map axon by axon, as AxonDeepSeg users expect of a fibre.

Each step is a switch of `segmenter.predict.postprocess` (recorded with the kept model), in this
order:
- `myelin_from_image_um`: myelin grows outward, one pixel at a time up to this distance, into
  the background pixels whose intensity the image's own myelin explains better than its
  background (each a Gaussian fitted to its interior in this image): a proxy trained on
  another modality's labels draws the fibre's edge where that modality's labels put it, the
  image says where it is;
- `fill_holes`: pixels enclosed by one axon become axon (a dark organelle is not a hole);
- `min_axon_area_um2`: axons smaller than this are background (specks between fibres);
- `drop_unmyelinated`: axons with no myelin pixel within `ring_um` of their border are
  background (extracellular space and vessels look like axons, but nothing wraps them);
- `min_ring_myelin`: axons whose ring (the pixels within `ring_um` of their border nearer to
  them than to any other axon) is less than this fraction myelin are background: a gap between
  fibres touches their myelin on some sides only, a fibre's axon is wrapped all round.
Axons are 8-connected components, as in `morphometrics.py` and AxonDeepSeg. Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as components

from axondeepsynth.data.labels import AXON, BACKGROUND, MYELIN
from axondeepsynth.schema import check


@dataclass
class PostprocessConfig:
    """`segmenter.predict.postprocess`: each step off by default, recorded with the kept model."""

    # myelin grows outward up to this far (µm), into background pixels the image's own myelin
    # intensity explains better than its background (postprocess.grow_myelin)
    myelin_from_image_um: float = 0.0
    fill_holes: bool = False  # pixels enclosed by one axon become axon
    min_axon_area_um2: float = 0.0  # smaller axons become background
    drop_unmyelinated: bool = False  # axons with no myelin within ring_um become background
    # axons whose ring (within ring_um) is less than this fraction myelin become background
    min_ring_myelin: float = 0.0
    ring_um: float = 0.3

    @property
    def active(self) -> bool:
        return (
            self.myelin_from_image_um > 0
            or self.fill_holes
            or self.min_axon_area_um2 > 0
            or self.drop_unmyelinated
            or self.min_ring_myelin > 0
        )


def validate_config(p: PostprocessConfig, key: str) -> None:
    check(
        p.min_axon_area_um2 >= 0,
        f"{key}.min_axon_area_um2",
        f"must be >= 0 µm², got {p.min_axon_area_um2}",
    )
    check(p.ring_um > 0, f"{key}.ring_um", f"must be > 0 µm, got {p.ring_um}")
    check(
        0 <= p.min_ring_myelin <= 1,
        f"{key}.min_ring_myelin",
        f"must be a fraction in [0, 1], got {p.min_ring_myelin}",
    )
    check(
        p.myelin_from_image_um >= 0,
        f"{key}.myelin_from_image_um",
        f"must be >= 0 µm, got {p.myelin_from_image_um}",
    )


def clean(
    labels: np.ndarray, pixel_size: float, cfg: PostprocessConfig, image: np.ndarray
) -> np.ndarray:
    """A copy of a label map (0 background, 1 myelin, 2 axon) of `image` (the same shape) at
    `pixel_size` µm/px, cleaned."""
    out = labels.copy()
    if not cfg.active:
        return out
    if cfg.myelin_from_image_um > 0:
        out = grow_myelin(out, image, max(1, round(cfg.myelin_from_image_um / pixel_size)))
    if cfg.fill_holes:
        out[ndi.binary_fill_holes(out == AXON)] = AXON
    axons, n = components(out == AXON, connectivity=2, return_num=True)
    if n == 0:
        return out
    drop = np.zeros(n + 1, bool)
    if cfg.min_axon_area_um2 > 0:
        area = np.bincount(axons.ravel(), minlength=n + 1) * pixel_size**2
        drop |= area < cfg.min_axon_area_um2
    if cfg.drop_unmyelinated or cfg.min_ring_myelin > 0:
        # each pixel within the ring counts for its nearest axon
        dist, (iy, ix) = ndi.distance_transform_edt(axons == 0, return_indices=True)
        ring = (axons == 0) & (dist <= max(1.0, cfg.ring_um / pixel_size))
        owner = axons[iy, ix][ring]
        myelin = np.bincount(owner[out[ring] == MYELIN], minlength=n + 1)
        if cfg.drop_unmyelinated:
            drop |= myelin == 0
        drop |= myelin < cfg.min_ring_myelin * np.bincount(owner, minlength=n + 1)
    drop[0] = False
    out[drop[axons]] = BACKGROUND
    return out


def grow_myelin(labels: np.ndarray, image: np.ndarray, steps: int) -> np.ndarray:
    """Myelin grown outward `steps` times by one pixel (8-neighbours) into the background
    pixels whose intensity is likelier under the image's myelin than under its background;
    each is a Gaussian fitted, at each step, to its pixels 2 px inside its borders (1 px, or
    all of them, where it is thinner). Axons are left as they are: growing into them measured
    worse on real SEM (experiments/README.md)."""
    out, x = labels.copy(), image.astype(np.float32)
    for _ in range(steps):
        near = np.flatnonzero(_morph(out == MYELIN, 1, dilate=True) & (out == BACKGROUND))
        fit = {}
        for c in (BACKGROUND, MYELIN):
            inside = x[_interior(out == c)]
            if inside.size < 2:
                return out  # nothing to learn either intensity from
            sd = float(inside.std()) + 1e-6
            fit[c] = -0.5 * ((x.flat[near] - float(inside.mean())) / sd) ** 2 - np.log(sd)
        grow = near[fit[MYELIN] > fit[BACKGROUND]]  # only the candidates are scored
        if grow.size == 0:
            break
        out.flat[grow] = MYELIN
    return out


def _interior(mask: np.ndarray) -> np.ndarray:
    """`mask`'s pixels 2 px inside its borders, else 1 px, else all of them."""
    for depth in (2, 1):
        inner = _morph(mask, depth)
        if inner.any():
            return inner
    return mask


_SQUARE = np.ones((3, 3), np.uint8)


def _morph(mask: np.ndarray, steps: int, dilate: bool = False) -> np.ndarray:
    """scipy's binary erosion (or dilation) by the 3x3 square, `steps` times, outside the
    image counting as False; OpenCV's, about 40x faster on a 2001² mask (imported here: the
    config imports this module, and the command line's help needs no OpenCV)."""
    import cv2

    op = cv2.dilate if dilate else cv2.erode
    done = op(
        mask.view(np.uint8),
        _SQUARE,
        iterations=steps,
        borderType=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return done.view(bool)
