"""Dataset layouts at the edge: BIDS microscopy, AxonDeepSeg folders, nnU-Net raw."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from axondeepsynth.data.formats import axondeepseg, bids, nnunet
from axondeepsynth.data.records import DatasetIndex, Problem, Sample
from axondeepsynth.errors import DataError


def detect_layout(root: Path) -> str:
    """Name the layout of a dataset root."""
    root = Path(root).expanduser()
    if (root / "dataset.json").is_file() and (root / "imagesTr").is_dir():
        return "nnunet"
    micr = any(root.glob("sub-*/micr")) or any(root.glob("sub-*/ses-*/micr"))
    if (root / "dataset_description.json").is_file() or micr:
        return "bids"  # AxonDeepSeg folders may be named sub-* too, but hold no micr/
    return "axondeepseg"


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


def scan(root: Path | str, modality: str | None = None) -> DatasetIndex:
    """Index every image under `root`, whatever its layout; problems are collected, not raised."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            root,
            "dataset root is not a folder",
            "point the domain's `root` at a BIDS, AxonDeepSeg or nnU-Net raw dataset",
        )
    layout = detect_layout(root)
    reader = {"bids": bids.scan, "axondeepseg": axondeepseg.scan, "nnunet": nnunet.scan}[layout]
    index = reader(root, modality)
    for name, paths in duplicate_names(index).items():
        index.problems.append(
            Problem(
                root,
                f"duplicate sample name '{name}' ({', '.join(map(str, paths))})",
                DUPLICATE_FIX,
            )
        )
    return index


def write(
    samples: Iterable[Sample],
    root: Path,
    layout: str,
    modality: str | None = None,
    description: dict | None = None,
) -> list[Path]:
    """Write samples in `layout` (the layout their input had) under `root`; returns the image
    paths in sample order. A sample whose image is None was written before and is only listed."""
    if layout == "bids":
        return bids.write(samples, root, modality, description or {})
    if layout == "nnunet":
        return nnunet.write(samples, root, root.name)
    return axondeepseg.write(samples, root)


def image_path(sample: Sample, root: Path, layout: str, modality: str | None = None) -> Path:
    """Where `write` puts a sample's image in `layout`."""
    if layout == "bids":
        return bids.image_path(sample, root, modality)
    if layout == "nnunet":
        return nnunet.image_path(sample, root)
    return axondeepseg.image_path(sample, root)
