"""The internal representation every reader produces and every later stage consumes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from axondeepsynth.data import images
from axondeepsynth.data import labels as lbl
from axondeepsynth.errors import DataError


@dataclass(frozen=True)
class ImageRecord:
    """One image file found on disk, with what is known about it before decoding."""

    image: Path
    name: str  # unique within a dataset; output files are named after it
    subject: str  # the unit folds are split by
    layout: str  # "bids" | "axondeepseg" | "nnunet"
    modality: str | None = None
    pixel_size: float | None = None  # µm per pixel
    pixel_size_from: str = ""  # the file it came from, or where it was looked for
    pixel_size_problem: str = ""  # why none was taken from there
    labels: dict[str, Path] = field(default_factory=dict)  # axon|myelin|axonmyelin|index -> mask
    index_labels: dict[int, int] = field(default_factory=dict)  # 'index' mask value -> class


@dataclass(frozen=True)
class Problem:
    """Something wrong with a dataset, found without stopping the scan."""

    path: Path
    problem: str
    fix: str = ""
    dropped: bool = False  # the scan left this image out: a run on the dataset stops

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" + (f" (fix: {self.fix})" if self.fix else "")


PLAUSIBLE_PIXEL_SIZE_UM = (1e-4, 100.0)  # 0.1 nm (high-magnification TEM) to 100 µm per pixel


def pixel_size_problem(value: object, path: Path, fix: str, to_um: float = 1.0) -> Problem | None:
    """Why `value` (as read from `path`, in units of `to_um` µm) is not a usable pixel size, or
    None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Problem(path, f"pixel size {value!r} is not a number", fix)
    if not math.isfinite(value) or value <= 0:
        return Problem(path, f"pixel size {value} is not a finite number > 0", fix)
    lo, hi = PLAUSIBLE_PIXEL_SIZE_UM
    if not lo <= value * to_um <= hi:
        return Problem(
            path, f"pixel size {value * to_um:g} µm is outside the plausible {lo:g}-{hi:g} µm", fix
        )
    return None


@dataclass
class DatasetIndex:
    """All images of one dataset root and the problems met while indexing it."""

    root: Path
    layout: str
    records: list[ImageRecord]
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    """A decoded image: float32 gray in [0, 1], its pixel size and optional label map."""

    name: str
    subject: str
    image: np.ndarray
    pixel_size: float
    labels: np.ndarray | None
    source: Path
    source_shape: tuple[int, int] | None = None  # (H, W) in the file, before any resampling
    dataset: str = ""  # which of a domain's datasets it came from ("" for a one-dataset domain)

    @property
    def key(self) -> str:
        """Unique within a domain: the name, behind its dataset's tag when there are several."""
        return f"{self.dataset}/{self.name}" if self.dataset else self.name

    @property
    def group(self) -> str:
        """The unit folds are split by: the subject, within its dataset."""
        return f"{self.dataset}/{self.subject}" if self.dataset else self.subject


def _read(path: Path, decode, *args) -> tuple[np.ndarray, str]:
    try:
        return decode(images.read_mask(path), *args)
    except lbl.MaskError as err:
        raise DataError(path, err.problem, err.fix) from None


def decode_labels(record: ImageRecord) -> tuple[np.ndarray | None, dict[str, str]]:
    """A record's masks as one label map (0 background, 1 myelin, 2 axon), and how each mask
    file was read (e.g. {"axonmyelin": "0/127/255"}); DataError names a mask that fits no
    convention."""
    paths = record.labels
    if "axonmyelin" in paths:
        labels, how = _read(paths["axonmyelin"], lbl.read_axonmyelin)
        return labels, {"axonmyelin": how}
    if "index" in paths:
        raw = images.read_mask(paths["index"])
        unknown = set(np.unique(raw).tolist()) - set(record.index_labels)
        if unknown:
            raise DataError(
                paths["index"],
                f"label values {sorted(unknown)} are not declared",
                "declare them in dataset.json 'labels' or fix the mask",
            )
        lut = np.zeros(256, np.uint8)
        for value, cls in record.index_labels.items():
            lut[value] = cls
        return lut[raw], {"index": "values of dataset.json labels"}
    read = {k: _read(paths[k], lbl.read_binary, k) for k in ("axon", "myelin") if k in paths}
    if not read:
        return None, {}
    masks = {k: mask for k, (mask, _) in read.items()}
    if len({m.shape for m in masks.values()}) > 1:
        raise DataError(
            paths["myelin"],
            f"mask is {masks['myelin'].shape}, axon mask {masks['axon'].shape}",
            "re-export both masks from the same image",
        )
    labels = lbl.from_masks(masks.get("axon"), masks.get("myelin"))
    return labels, {k: how for k, (_, how) in read.items()}


def read_labels(record: ImageRecord) -> np.ndarray | None:
    """A record's masks as one label map (0 background, 1 myelin, 2 axon)."""
    return decode_labels(record)[0]


def check_mask_shape(record: ImageRecord, labels: np.ndarray | None, shape: tuple) -> None:
    """Raise if a record's masks are not the size of its image."""
    if labels is not None and labels.shape != tuple(shape):
        raise DataError(
            next(iter(record.labels.values())),
            f"mask is {labels.shape[1]}x{labels.shape[0]} px but its image is "
            f"{shape[1]}x{shape[0]} px",
            f"re-export the mask at the size of {record.image.name}",
        )


def no_pixel_size(record: ImageRecord) -> str:
    """Why a record has no pixel size: the reason its source gave, or where it was looked for."""
    if record.pixel_size_problem:
        return f"no pixel size: {record.pixel_size_problem} (in {record.pixel_size_from})"
    return f"no pixel size (looked in {record.pixel_size_from})"


def pixel_size_of(record: ImageRecord, pixel_size: float | None = None) -> float:
    """A record's pixel size (µm); `pixel_size` replaces a missing one from the dataset."""
    ps = record.pixel_size if record.pixel_size is not None else pixel_size
    if ps is None:
        raise DataError(
            record.image,
            no_pixel_size(record),
            "add it there, or give the domain's pixel size in µm in the config "
            "(data.labeled.pixel_size=... or data.unlabeled.pixel_size=...)",
        )
    return float(ps)


def load_sample(record: ImageRecord, pixel_size: float | None = None) -> Sample:
    """Decode a record; `pixel_size` (µm) replaces a missing one from the dataset."""
    ps = pixel_size_of(record, pixel_size)
    image = images.read_image(record.image)
    label_map = read_labels(record)
    check_mask_shape(record, label_map, image.shape)
    return Sample(
        record.name, record.subject, image, float(ps), label_map, record.image, image.shape
    )
