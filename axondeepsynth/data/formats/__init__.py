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
    names = [r.name for r in index.records]
    for name in sorted({n for n in names if names.count(n) > 1}):
        paths = ", ".join(str(r.image) for r in index.records if r.name == name)
        index.problems.append(
            Problem(
                root, f"duplicate sample name '{name}' ({paths})", "give each sample a unique name"
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
