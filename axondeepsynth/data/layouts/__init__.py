"""Dataset layouts at the edge, as one table: BIDS microscopy, AxonDeepSeg folders, nnU-Net raw.

Each layout is a module with `detect(root)`, `scan(root, modality)` (index images, masks and
pixel sizes; problems collected, not raised), `write(samples, root, modality, description)` and
`image_path(sample, root, modality)`. Adding one is a module here and an entry in `LAYOUTS`, in
the order they are tried (the most specific marker first).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from axondeepsynth.data.layouts import axondeepseg, bids, nnunet
from axondeepsynth.data.records import DatasetIndex, Problem, Sample
from axondeepsynth.errors import DataError


class Layout(Protocol):
    def detect(self, root: Path) -> bool: ...

    def scan(self, root: Path, modality: str | None = None) -> DatasetIndex: ...

    def write(
        self,
        samples: Iterable[Sample],
        root: Path,
        modality: str | None = None,
        description: dict | None = None,
    ) -> list[Path]: ...

    def image_path(self, sample: Sample, root: Path, modality: str | None = None) -> Path: ...


LAYOUTS: dict[str, Layout] = {"nnunet": nnunet, "bids": bids, "axondeepseg": axondeepseg}


def detect(root: Path) -> Layout | None:
    """The layout of a dataset root, or None when none recognises it (it holds no images)."""
    root = Path(root).expanduser()
    return next((layout for layout in LAYOUTS.values() if layout.detect(root)), None)


DUPLICATE_FIX = (
    "give each image a unique file name (outputs are named after it; in BIDS add the session "
    "entity, e.g. sub-rat1_ses-1_sample-1_SEM.png)"
)


def duplicate_names(index: DatasetIndex) -> dict[str, list[Path]]:
    """Sample names that more than one image file of a dataset would take."""
    paths: dict[str, list[Path]] = {}
    for record in index.records:
        paths.setdefault(record.name, []).append(record.image)
    return {name: found for name, found in sorted(paths.items()) if len(found) > 1}


# the longest name written after a sample's: `<name>_morphometrics.csv`
LONGEST_OUTPUT = "_morphometrics.csv"
NAME_MAX = 255  # bytes in a file name, on every common file system


def too_long(index: DatasetIndex) -> list[Problem]:
    """Problems for the samples whose output files' names would pass the file systems' limit
    (they are left out of the index)."""
    problems, kept = [], []
    for record in index.records:
        if len((record.name + LONGEST_OUTPUT).encode()) > NAME_MAX:
            problems.append(
                Problem(
                    record.image,
                    f"its name ({len(record.name.encode())} bytes, with the folders it sits in) "
                    f"is too long for the files named after it ({NAME_MAX} bytes at most)",
                    "rename it or its folders shorter",
                    dropped=True,
                )
            )
        else:
            kept.append(record)
    index.records[:] = kept
    return problems


def scan(root: Path | str, modality: str | None = None) -> DatasetIndex:
    """Index every image under `root`, whatever its layout; problems are collected, not raised."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            root,
            "dataset root is not a folder",
            "point the domain's `root` at a BIDS, AxonDeepSeg or nnU-Net raw dataset",
        )
    layout = detect(root)
    if layout is None:
        return DatasetIndex(root, "none", [])
    index = layout.scan(root, modality)
    index.problems += too_long(index)
    for name, paths in duplicate_names(index).items():
        index.problems.append(
            Problem(
                root,
                f"duplicate sample name '{name}' ({', '.join(map(str, paths))})",
                DUPLICATE_FIX,
            )
        )
    return index
