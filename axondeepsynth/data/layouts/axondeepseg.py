"""AxonDeepSeg folders: `<name>.png` + `pixel_size_in_micrometer.txt` + `<name>_seg-*.png`.

The root may be one such folder or contain many (one image per folder, or several sharing the
folder's pixel size file).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from axondeepsynth import io
from axondeepsynth.data import images
from axondeepsynth.data.images import IMAGE_SUFFIXES
from axondeepsynth.data.labels import to_masks
from axondeepsynth.data.records import (
    DatasetIndex,
    ImageRecord,
    Problem,
    Sample,
    pixel_size_problem,
)

PIXEL_SIZE_FILE = "pixel_size_in_micrometer.txt"
_KINDS = ("axonmyelin", "axon", "myelin")


def _pixel_size(folder: Path) -> tuple[float | None, Problem | None]:
    path = folder / PIXEL_SIZE_FILE
    if not path.is_file():
        return None, Problem(
            folder,
            f"no {PIXEL_SIZE_FILE}",
            f"write the pixel size in µm into {path} or pass `pixel_size=`",
        )
    fix = f"write one pixel size in µm into {path.name}, e.g. 0.1"
    text = path.read_text(errors="replace")
    try:
        value = float(text.split()[0])
    except (ValueError, IndexError):
        return None, Problem(path, f"cannot read a number from '{text[:40]}'", fix)
    problem = pixel_size_problem(value, path, fix)
    if problem is not None:
        return None, problem
    return value, None


def scan(root: Path, modality: str | None = None) -> DatasetIndex:
    """Index AxonDeepSeg-style folders under `root`."""
    index = DatasetIndex(root, "axondeepseg", [])
    images = [
        p
        for p in sorted(root.rglob("*"))
        if p.suffix.lower() in IMAGE_SUFFIXES
        and "_seg-" not in p.stem
        and not p.name.startswith(".")
    ]
    for folder in sorted({p.parent for p in images}):
        pixel_size, problem = _pixel_size(folder)
        if problem:
            index.problems.append(problem)
        for image in (p for p in images if p.parent == folder):
            labels = {k: image.with_name(f"{image.stem}_seg-{k}.png") for k in _KINDS}
            rel = image.relative_to(root)
            name = "_".join([*rel.parent.parts, image.stem]) if rel.parent.parts else image.stem
            index.records.append(
                ImageRecord(
                    image=image,
                    name=name,
                    subject=rel.parts[0] if len(rel.parts) > 1 else name,
                    layout="axondeepseg",
                    modality=modality,
                    pixel_size=pixel_size,
                    pixel_size_from=str(folder / PIXEL_SIZE_FILE),
                    pixel_size_problem=problem.problem if problem else "",
                    labels={k: p for k, p in labels.items() if _is_file(p)},
                )
            )
    return index


def _is_file(path: Path) -> bool:
    """Whether `path` is a file; False where its name is too long to exist."""
    try:
        return path.is_file()
    except OSError:
        return False


def detect(root: Path) -> bool:
    """Any image file under `root`: AxonDeepSeg folders have no marker file of their own."""
    return any(
        p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") for p in root.rglob("*")
    )


def write(
    samples: Iterable[Sample],
    root: Path,
    modality: str | None = None,
    description: dict | None = None,
) -> list[Path]:
    """One AxonDeepSeg folder per sample (grouped by subject): image.png, pixel size file and
    its masks."""
    paths = []
    for s in samples:
        path = image_path(s, root)
        paths.append(path)
        if s.image is None:
            continue  # written by an interrupted run (the image file is always written last)
        io.write_text(path.parent / PIXEL_SIZE_FILE, f"{s.pixel_size:.6g}\n")
        if s.labels is not None:
            for kind, mask in to_masks(s.labels):
                images.write_png(path.parent / f"image_seg-{kind}.png", mask)
        images.write_png(path, s.image)
    return paths


def image_path(sample: Sample, root: Path, modality: str | None = None) -> Path:
    """Where `write` puts a sample's image: `<subject>/<name>/image.png`, so that reading the
    folder back gives the same subjects (k-fold splits by them)."""
    subject = () if sample.subject == sample.name else (sample.subject,)
    return root.joinpath(*subject, sample.name, "image.png")
