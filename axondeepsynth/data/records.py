"""The internal representation every reader produces and every later stage consumes."""

from __future__ import annotations

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
    labels: dict[str, Path] = field(default_factory=dict)  # axon|myelin|axonmyelin|index -> mask
    index_labels: dict[int, int] = field(default_factory=dict)  # 'index' mask value -> class


@dataclass(frozen=True)
class Problem:
    """Something wrong with a dataset, found without stopping the scan."""

    path: Path
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" + (f" (fix: {self.fix})" if self.fix else "")


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


def _binary(path: Path) -> np.ndarray:
    """A binary mask as 0/255, whether it was saved as 0/255 or 0/1."""
    mask = images.read_mask(path)
    return mask * 255 if mask.max() == 1 else mask


def read_labels(record: ImageRecord) -> np.ndarray | None:
    """Decode a record's masks into one label map (0 background, 1 myelin, 2 axon)."""
    paths = record.labels
    if "axonmyelin" in paths:
        mask = images.read_mask(paths["axonmyelin"])
        return mask if mask.max() <= 2 else lbl.from_axonmyelin(mask)  # 0/1/2 saved as is
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
        return lut[raw]
    if "axon" in paths or "myelin" in paths:
        axon, myelin = (_binary(paths[k]) if k in paths else None for k in ("axon", "myelin"))
        if axon is not None and myelin is not None and axon.shape != myelin.shape:
            raise DataError(
                paths["myelin"],
                f"mask is {myelin.shape}, axon mask {axon.shape}",
                "re-export both masks from the same image",
            )
        return lbl.from_masks(axon, myelin)
    return None


def check_mask_shape(record: ImageRecord, labels: np.ndarray | None, shape: tuple) -> None:
    """Raise if a record's masks are not the size of its image."""
    if labels is not None and labels.shape != tuple(shape):
        raise DataError(
            next(iter(record.labels.values())),
            f"mask is {labels.shape[1]}x{labels.shape[0]} px but its image is "
            f"{shape[1]}x{shape[0]} px",
            f"re-export the mask at the size of {record.image.name}",
        )


def load_sample(record: ImageRecord, pixel_size: float | None = None) -> Sample:
    """Decode a record; `pixel_size` (µm) replaces a missing one from the dataset."""
    ps = record.pixel_size if record.pixel_size is not None else pixel_size
    if ps is None:
        raise DataError(
            record.image,
            f"no pixel size (looked in {record.pixel_size_from})",
            "add it there, or give the domain's pixel size in µm in the config "
            "(data.labeled.pixel_size=... or data.unlabeled.pixel_size=...)",
        )
    image = images.read_image(record.image)
    label_map = read_labels(record)
    check_mask_shape(record, label_map, image.shape)
    return Sample(
        record.name, record.subject, image, float(ps), label_map, record.image, image.shape
    )
