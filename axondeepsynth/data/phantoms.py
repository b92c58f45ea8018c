"""Synthetic nerve cross-sections with exact labels, rendered in several microscopy looks.

The project ships no third-party images; this module is its embedded default dataset. A phantom
is a packed field of myelinated fibres seen in transverse section:

- axons are mildly irregular ellipses with lognormal diameters (median 0.9 µm), random eccentricity
  and orientation;
- each axon is wrapped in a myelin sheath of near-constant thickness set by a g-ratio
  (axon / fibre diameter) ~ N(0.65, 0.04) clipped to [0.55, 0.75];
- fibres never overlap, are separated by a thin extracellular gap, cover ~40-60% of the field
  and are cut by the image border like a real crop.

Geometry depends only on the seed, so one geometry can be rendered as TEM, SEM or bright-field
(BF); rendering the same seeds in two looks gives paired data, different seeds unpaired data.

Not modelled: unmyelinated axons, nodes of Ranvier, myelin out-foldings and splitting, cell
nuclei, blood vessels, fascicles and perineurium, fixation and sectioning artefacts. The looks are
caricatures tuned for intensity statistics (which compartment is bright, blur, noise), not
physical image-formation models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from axondeepsynth import io
from axondeepsynth.data.config import PHANTOM_PIXEL_SIZE
from axondeepsynth.data.labels import AXON, BACKGROUND, MYELIN
from axondeepsynth.data.layouts import bids
from axondeepsynth.data.records import Sample

PIXEL_SIZE = PHANTOM_PIXEL_SIZE
BIDS_VERSION = "1.9.0"
GENERATOR = "axondeepsynth.phantoms"

_SUBPIXEL = 3  # cv2.fillPoly fixed-point bits
_VERTICES = 48  # polygon vertices per contour
_MIN_MYELIN_PX = 2.0  # thinnest sheath drawn, whatever the pixel size


@dataclass(frozen=True)
class Geometry:
    """Label map (0 background, 1 myelin, 2 axon) and the fibres that intersect it."""

    labels: np.ndarray  # uint8 HxW
    pixel_size: float  # µm per pixel
    axon_diameters: np.ndarray  # µm, nominal equivalent-circle diameter per fibre
    g_ratios: np.ndarray  # nominal axon / fibre diameter per fibre


@dataclass(frozen=True)
class Phantom:
    """One geometry rendered in one or more looks (float32 HxW images in [0, 1])."""

    geometry: Geometry
    images: dict[str, np.ndarray]


def _shape(size: tuple[int, int] | int) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


# ----------------------------------------------------------------------------- geometry


def _fibre(rng: np.random.Generator, d_px: float, g: float) -> tuple[np.ndarray, ...]:
    """Axon, myelin and gap contours (Nx2, centred on 0) of a fibre with axon diameter `d_px`."""
    theta = np.linspace(0, 2 * np.pi, _VERTICES, endpoint=False)
    aspect = rng.uniform(0.65, 1.0)  # minor / major axis, area-preserving
    a, b = d_px / 2 / np.sqrt(aspect), d_px / 2 * np.sqrt(aspect)
    r = a * b / np.hypot(b * np.cos(theta), a * np.sin(theta))
    k = np.arange(2, 6)[:, None]  # low-frequency wobble of the axolemma
    wobble = rng.normal(0, 0.06, (4, 1)) / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi, (4, 1)))
    r *= 1 + wobble.sum(0)
    phi = theta + rng.uniform(0, np.pi)
    axon = np.stack([r * np.cos(phi), r * np.sin(phi)], 1)
    tangent = np.roll(axon, -1, 0) - np.roll(axon, 1, 0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    lopsided = 1 + 0.1 * np.cos(theta - rng.uniform(0, 2 * np.pi))
    thickness = np.maximum(d_px * (1 / g - 1) / 2 * lopsided, _MIN_MYELIN_PX)[:, None]
    outer = axon + normal * thickness
    return axon, outer, outer + normal * (2 + rng.exponential(0.5))


def _fill(canvas: np.ndarray, poly: np.ndarray, value: int) -> None:
    """Fill polygon `poly` (Nx2 x, y vertices) with sub-pixel vertex precision."""
    pts = np.round(poly * (1 << _SUBPIXEL)).astype(np.int32)
    cv2.fillPoly(canvas, [pts], value, lineType=cv2.LINE_8, shift=_SUBPIXEL)


def _fits(occupied: np.ndarray, outer: np.ndarray) -> bool:
    """True when polygon `outer` (canvas coordinates) avoids every occupied pixel."""
    lo = np.maximum(np.floor(outer.min(0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(outer.max(0)).astype(int) + 2, occupied.shape[::-1])
    patch = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), np.uint8)
    _fill(patch, outer - lo, 1)
    return not np.any(patch & occupied[lo[1] : hi[1], lo[0] : hi[0]])


def _sample_sizes(
    rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, coverage: float
) -> tuple[np.ndarray, np.ndarray]:
    """Axon diameters (px, descending) and g-ratios whose expected in-image area hits `coverage`.

    Fibre centres may lie outside the image by 0.6 fibre radii, so a fibre of radius R adds its
    area times the image's share of the (h + 1.2 R) x (w + 1.2 R) region its centre is drawn from.
    """
    h, w = shape
    d, g, area = [], [], 0.0
    while area < coverage * h * w:
        di = max(np.clip(rng.lognormal(np.log(0.9), 0.5), 0.4, 4.0) / pixel_size, 4.0)
        gi = float(np.clip(rng.normal(0.65, 0.04), 0.55, 0.75))
        radius = di / gi / 2
        area += np.pi * radius**2 * h * w / ((h + 1.2 * radius) * (w + 1.2 * radius))
        d.append(di)
        g.append(gi)
    order = np.argsort(d)[::-1]
    return np.asarray(d)[order], np.asarray(g)[order]


def _pick(
    rng: np.random.Generator, free: np.ndarray, radius: np.ndarray, snug: bool
) -> np.ndarray | None:
    """A random (x, y) on a stride-2 grid of `free` where the fibre fits, or None.

    A snug spot keeps a clearance of at most 2 px beyond the fibre's largest radius, so the fibre
    touches a neighbour's gap; otherwise any spot clearing its smallest radius will do.
    """
    grid = free[::2, ::2]
    spots = np.flatnonzero((grid >= radius.max()) & (grid < radius.max() + 2)) if snug else []
    if len(spots) == 0:
        spots = np.flatnonzero(grid >= radius.min())
    if len(spots) == 0:
        return None
    y, x = divmod(int(spots[rng.integers(len(spots))]), grid.shape[1])
    return np.array([2 * x, 2 * y]) + rng.uniform(-0.5, 0.5, 2)


def sample_geometry(
    shape: tuple[int, int] | int,
    seed: int,
    pixel_size: float = PIXEL_SIZE,
    coverage: tuple[float, float] = (0.42, 0.58),
    snugness: float = 0.7,
) -> Geometry:
    """Pack non-overlapping fibres, largest first, into free space found by a distance transform.

    `coverage` bounds the targeted fibre (axon + myelin) area fraction, drawn uniformly per seed;
    `snugness` is the chance a fibre is put against a neighbour rather than anywhere free, which
    clusters fibres into touching bundles as in real white matter.
    """
    rng = np.random.default_rng([seed, 0])
    h, w = _shape(shape)
    diameters, g_ratios = _sample_sizes(rng, (h, w), pixel_size, rng.uniform(*coverage))
    fibres = [_fibre(rng, d, g) for d, g in zip(diameters, g_ratios, strict=True)]
    margins = [int(0.6 * np.linalg.norm(outer, axis=1).mean()) for _, outer, _ in fibres]
    pad = max(margins) + 1
    labels = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)
    occupied = np.zeros_like(labels)  # fibres grown by their extracellular gap
    free, stale, kept = None, False, []  # distances to `occupied`, refreshed only after a miss
    for i, ((axon, outer, halo), m) in enumerate(zip(fibres, margins, strict=True)):
        radius, snug = np.linalg.norm(outer, axis=1), rng.random() < snugness
        for _ in range(3):
            if free is None:
                free = cv2.distanceTransform(1 - occupied, cv2.DIST_L2, 3)
            spot = _pick(rng, free[pad - m : pad + h + m, pad - m : pad + w + m], radius, snug)
            if spot is None:
                break
            centre = spot + pad - m
            if _fits(occupied, outer + centre):
                _fill(labels, outer + centre, MYELIN)
                _fill(labels, axon + centre, AXON)
                _fill(occupied, halo + centre, 1)
                stale = True
                kept.append(i)
                break
            if stale:
                free, stale = None, False
    sheath = cv2.dilate((labels == AXON).astype(np.uint8), np.ones((3, 3), np.uint8))
    labels[(sheath > 0) & (labels == BACKGROUND)] = MYELIN  # seal rasterisation pinholes
    labels = labels[pad : pad + h, pad : pad + w]
    return Geometry(labels, pixel_size, diameters[kept] * pixel_size, g_ratios[kept])


# ----------------------------------------------------------------------------- rendering


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smooth zero-mean unit-variance noise with correlation length `sigma` px."""
    f = _blur(rng.standard_normal(shape, dtype=np.float32), sigma)
    return f / (f.std() + 1e-6)


def _dots(
    rng: np.random.Generator, shape: tuple[int, int], density: float, sigma: float
) -> np.ndarray:
    """Sparse blurred dots with peak ~1: organelle-like texture."""
    dots = (rng.random(shape, dtype=np.float32) < density).astype(np.float32)
    return _blur(dots, sigma) * (2 * np.pi * sigma**2)


def _illumination(
    rng: np.random.Generator, shape: tuple[int, int], tilt: float, vignette: float
) -> np.ndarray:
    """Multiplicative gain: a random linear tilt times a radial fall-off from a random centre."""
    y, x = np.mgrid[-1 : 1 : shape[0] * 1j, -1 : 1 : shape[1] * 1j].astype(np.float32)
    angle, (cy, cx) = rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.3, 2)
    gain = 1 + tilt * (np.cos(angle) * x + np.sin(angle) * y)
    return gain * (1 - vignette * ((x - cx) ** 2 + (y - cy) ** 2) / 2)


def _shot(rng: np.random.Generator, img: np.ndarray, photons: float) -> np.ndarray:
    """Poisson noise for `photons` counts at intensity 1."""
    return rng.poisson(np.clip(img, 0, None) * photons).astype(np.float32) / photons


def _levels(
    rng: np.random.Generator, labels: np.ndarray, bg: float, myelin: float, axon: float
) -> np.ndarray:
    """Piecewise-constant image with each compartment's grey level jittered by ±0.03."""
    lut = np.array([bg, myelin, axon], np.float32) + rng.uniform(-0.03, 0.03, 3).astype(np.float32)
    return lut[labels]


def _tem(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Osmium-stained TEM: black myelin, pale speckled axoplasm with mitochondria, grey matrix."""
    shape, axon, bg = labels.shape, labels == AXON, labels == BACKGROUND
    img = _levels(rng, labels, 0.55, 0.12, 0.78)
    img -= 0.25 * axon * _dots(rng, shape, 0.03, 0.6)  # neurofilaments and microtubules
    img -= 0.3 * axon * (_dots(rng, shape, 2e-3, 2.0) > 0.5)  # mitochondria
    img += bg * (0.06 * _field(rng, shape, 1.0) + 0.05 * _field(rng, shape, 4.0))  # collagen
    near = cv2.distanceTransform(bg.astype(np.uint8), cv2.DIST_L2, 3) < 2.5
    img -= 0.12 * (bg & near)  # Schwann cell cytoplasm hugging the sheath
    img = _blur(img, 0.7) * _illumination(rng, shape, 0.05, 0.1)
    return _shot(rng, img, 300) + rng.normal(0, 0.02, shape).astype(np.float32)


def _sem(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Back-scattered SEM (inverted contrast): bright myelin, dark axons and matrix, scan noise."""
    shape = labels.shape
    img = _levels(rng, labels, 0.22, 0.82, 0.35)
    img += 0.04 * _field(rng, shape, 2.0) + 0.08 * (labels == AXON) * _dots(rng, shape, 0.02, 0.8)
    img = _blur(img, 1.0) * _illumination(rng, shape, 0.15, 0.1)
    img += 0.03 * rng.standard_normal((shape[0], 1), dtype=np.float32)  # scan-line jitter
    return _shot(rng, img, 40)


def _bf(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Toluidine-blue bright-field in grey: soft dark rings on a pale field, blur, vignetting."""
    shape = labels.shape
    img = _levels(rng, labels, 0.72, 0.45, 0.66) + 0.02 * _field(rng, shape, 6.0)
    img = _blur(img, 2.0) * _illumination(rng, shape, 0.08, 0.35)
    return img + rng.normal(0, 0.01, shape).astype(np.float32)


LOOKS = {"TEM": _tem, "SEM": _sem, "BF": _bf}


def render(labels: np.ndarray, look: str, seed: int) -> np.ndarray:
    """Render a label map as a float32 image in [0, 1] in one of `LOOKS`."""
    if look not in LOOKS:
        raise ValueError(f"unknown look {look!r}; expected one of {sorted(LOOKS)}")
    rng = np.random.default_rng([seed, 1 + list(LOOKS).index(look)])
    return np.clip(LOOKS[look](rng, labels), 0, 1).astype(np.float32)


def render_nerve(
    size: tuple[int, int] | int,
    seed: int,
    pixel_size: float = PIXEL_SIZE,
    looks: tuple[str, ...] = tuple(LOOKS),
) -> Phantom:
    """Sample one geometry from `seed` and render it in each of `looks`."""
    geometry = sample_geometry(size, seed, pixel_size)
    return Phantom(geometry, {look: render(geometry.labels, look, seed) for look in looks})


# ----------------------------------------------------------------------------- BIDS export


def _json(obj: dict) -> str:
    return json.dumps(obj, indent=2) + "\n"


def _claim(root: Path, params: dict) -> None:
    """Make `root` ours, or fail unless it already holds the dataset described by `params`."""
    record = root / "phantom.json"
    if record.exists():
        if json.loads(record.read_text()) != json.loads(_json(params)):
            raise FileExistsError(f"{root} holds a phantom dataset with other parameters")
    elif root.exists() and any(root.iterdir()):
        raise FileExistsError(f"refusing to write a phantom dataset into non-empty {root}")
    else:
        io.write_text(record, _json(params))


def _description(name: str, dataset_type: str) -> str:
    return _json(
        {
            "Name": name,
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": dataset_type,
            "GeneratedBy": [{"Name": GENERATOR}],
        }
    )


def _sample(i: int, sub: str, sample: str, look: str, seed: int, size, pixel_size) -> Sample:
    """Phantom i of a dataset, rendered from the geometry seeded by (seed, i)."""
    sample_seed = int(np.random.SeedSequence([seed, i + 1]).generate_state(1)[0])
    phantom = render_nerve(size, sample_seed, pixel_size, (look,))
    return Sample(
        f"sub-{sub}_sample-{sample}_{look}",
        f"sub-{sub}",
        phantom.images[look],
        pixel_size,
        phantom.geometry.labels,
        Path(f"phantom-{sample_seed}"),
    )


def write_bids_dataset(
    root: Path,
    look: str = "TEM",
    n_images: int = 8,
    size: tuple[int, int] | int = 256,
    seed: int = 0,
    pixel_size: float = PIXEL_SIZE,
    n_subjects: int = 2,
) -> Path:
    """Write `n_images` phantoms in one look as a BIDS microscopy dataset with label derivatives.

    Sample i (from 1) goes to subject sub-phantomNN round-robin and uses the geometry seeded by
    (seed, i): two looks written with the same `seed` are paired image by image, different seeds
    give unrelated geometries. Files are written atomically; rerunning with the same parameters
    skips what exists (finishing an interrupted run), other parameters or a foreign non-empty
    `root` raise FileExistsError.
    """
    if look not in LOOKS:
        raise ValueError(f"unknown look {look!r}; expected one of {sorted(LOOKS)}")
    if n_images < 1 or n_subjects < 1:
        raise ValueError("n_images and n_subjects must be positive")
    root = Path(root)
    params = {
        "look": look,
        "n_images": n_images,
        "size": list(_shape(size)),
        "seed": seed,
        "pixel_size": pixel_size,
        "n_subjects": n_subjects,
    }
    _claim(root, params)
    subjects = [f"phantom{s + 1:02d}" for s in range(n_subjects)]
    width = max(2, len(str(n_images)))
    samples = [(f"{i + 1:0{width}d}", subjects[i % n_subjects]) for i in range(n_images)]
    files = {
        "dataset_description.json": _description("axondeepsynth nerve phantoms", "raw"),
        "derivatives/labels/dataset_description.json": _description("phantom labels", "derivative"),
        "README": "Synthetic nerve cross-sections rendered by axondeepsynth.phantoms.\n",
        ".bidsignore": "phantom.json\n",
        "participants.tsv": "participant_id\n" + "".join(f"sub-{s}\n" for s in subjects),
        "samples.tsv": "sample_id\tparticipant_id\tsample_type\n"
        + "".join(f"sample-{n}\tsub-{s}\ttissue\n" for n, s in samples),
    }
    for name, text in files.items():
        if not (root / name).exists():
            io.write_text(root / name, text)
    # an image is written after its sidecar and masks, so its presence means the sample is whole
    missing = [
        (i, sample, sub)
        for i, (sample, sub) in enumerate(samples)
        if not (root / f"sub-{sub}" / "micr" / f"sub-{sub}_sample-{sample}_{look}.png").exists()
    ]
    if missing:
        phantoms = (_sample(i, sub, s, look, seed, size, pixel_size) for i, s, sub in missing)
        bids.write(phantoms, root, look, json.loads(files["dataset_description.json"]))
    return root
