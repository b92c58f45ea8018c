"""BIDS microscopy datasets as AxonDeepSeg publishes them.

Images: `sub-*/[ses-*/]micr/<entities>_<MODALITY>.{png,tif,tiff}`; pixel size from JSON sidecars
with BIDS inheritance (a less specific sidecar, e.g. `sub-rat3/micr/sub-rat3_SEM.json`, applies to
every file whose entities include its own); labels from
`derivatives/labels/sub-*/[ses-*/]micr/<stem>_seg-{axon,myelin,axonmyelin}[-manual].png`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import replace
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

MODALITIES = (
    "TEM",
    "SEM",
    "BF",
    "DF",
    "PC",
    "DIC",
    "FLUO",
    "CONF",
    "PLI",
    "CARS",
    "2PE",
    "MPE",
    "SR",
    "NLO",
    "OCT",
    "SPIM",
    "uCT",
    "XPCT",
)
_UNITS_TO_UM = {"um": 1.0, "µm": 1.0, "nm": 1e-3, "mm": 1e3}
_SEG = re.compile(r"^(?P<stem>.+)_seg-(?P<kind>axonmyelin|axon|myelin)(?:-manual)?$")


def parse_name(name: str) -> tuple[dict[str, str], str]:
    """`sub-rat3_sample-data9_SEM.png` -> ({'sub': 'rat3', 'sample': 'data9'}, 'SEM')."""
    parts = name.split(".")[0].split("_")
    entities = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
    return entities, parts[-1]


def _sidecars(root: Path, image: Path) -> list[Path]:
    """JSON files that apply to `image`, least specific first."""
    entities, suffix = parse_name(image.name)
    parts = image.parent.relative_to(root).parts
    folders = [root] + [root.joinpath(*parts[: i + 1]) for i in range(len(parts))]
    found = []
    for depth, folder in enumerate(folders):
        for sidecar in sorted(folder.glob(f"*_{suffix}.json")):
            ents, sfx = parse_name(sidecar.name)
            if sfx == suffix and ents.items() <= entities.items():
                found.append((depth, len(ents), sidecar))
    return [p for *_, p in sorted(found)]


def _pixel_size(root: Path, image: Path) -> tuple[float | None, str, Problem | None]:
    chain = _sidecars(root, image)
    merged, source = {}, None
    for sidecar in chain:
        try:
            fields = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError
            fields = err
        if not isinstance(fields, dict):
            why = fields if isinstance(fields, Exception) else "not a JSON object"
            return (
                None,
                str(sidecar),
                Problem(
                    sidecar,
                    f"unreadable JSON sidecar ({why})",
                    'write it as UTF-8 JSON, e.g. {"PixelSize": [0.1, 0.1], '
                    '"PixelSizeUnits": "um"}',
                ),
            )
        merged.update(fields)
        if "PixelSize" in fields:
            source = sidecar
    if source is None:
        where = ", ".join(str(p) for p in chain) or f"{image.with_suffix('.json').name} and the "
        where = where if chain else where + "subject-level sidecars"
        return (
            None,
            f"PixelSize of {where}",
            Problem(
                image,
                "no PixelSize in any JSON sidecar",
                f'add "PixelSize": [x, y] (µm) to {image.with_suffix(".json").name} or pass '
                "`pixel_size=` for this domain",
            ),
        )
    size = merged["PixelSize"]
    size = size if isinstance(size, list) else [size, size]
    scale = _UNITS_TO_UM.get(merged.get("PixelSizeUnits", "um"))
    fix = 'use "PixelSize": [x, y] with "PixelSizeUnits": "um"'
    if scale is None or len(size) < 2:
        return (
            None,
            str(source),
            Problem(source, f"cannot read PixelSize {size} {merged.get('PixelSizeUnits')}", fix),
        )
    for value in size[:2]:
        problem = pixel_size_problem(value, source, fix, to_um=scale)
        if problem is not None:
            return None, str(source), replace(problem, problem=f"PixelSize: {problem.problem}")
    x, y = (v * scale for v in size[:2])
    if abs(x - y) > 1e-6 * max(x, y):
        return (
            None,
            str(source),
            Problem(
                source,
                f"anisotropic pixel size {x}x{y} µm",
                "resample the image to square pixels first",
            ),
        )
    return x, str(source), None


def _label_files(root: Path) -> dict[str, dict[str, Path]]:
    """stem -> {kind: path} for every mask under derivatives/labels."""
    labels: dict[str, dict[str, Path]] = {}
    for path in sorted((root / "derivatives" / "labels").glob("sub-*/**/micr/*.png")):
        match = _SEG.match(path.stem)
        if match:
            kinds = labels.setdefault(match["stem"], {})
            if match["kind"] not in kinds or path.stem.endswith("-manual"):
                kinds[match["kind"]] = path
    return labels


def scan(root: Path, modality: str | None = None) -> DatasetIndex:
    """Index a BIDS microscopy dataset."""
    index = DatasetIndex(root, "bids", [])
    labels = _label_files(root)
    for image in sorted(root.glob("sub-*/**/micr/*")):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        entities, suffix = parse_name(image.name)
        if suffix not in MODALITIES:
            dotted = image.name.count(".") > 1
            index.problems.append(
                Problem(
                    image,
                    "a '.' inside the file name (BIDS entity values are letters and digits)"
                    if dotted
                    else f"unknown modality suffix '{suffix}'",
                    "rename it without the '.' (e.g. sample-data1p5)"
                    if dotted
                    else f"rename to end in one of {', '.join(MODALITIES)}",
                    dropped=True,
                )
            )
            continue
        if modality and suffix != modality:
            continue
        stem = image.name.split(".")[0]
        pixel_size, source, problem = _pixel_size(root, image)
        if problem:
            index.problems.append(problem)
        index.records.append(
            ImageRecord(
                image=image,
                name=stem,
                subject=f"sub-{entities.get('sub', '')}",
                layout="bids",
                modality=suffix,
                pixel_size=pixel_size,
                pixel_size_from=source,
                pixel_size_problem=problem.problem if problem else "",
                labels=labels.pop(stem, {}),
            )
        )
    for stem, kinds in labels.items():
        for path in kinds.values():
            index.problems.append(
                Problem(
                    path,
                    f"label without an image (no {stem}.* found)",
                    "add the image or remove the stray label",
                )
            )
    return index


def detect(root: Path) -> bool:
    """A dataset description or subject folders with micr/ (AxonDeepSeg folders may be named
    sub-* too, but hold no micr/)."""
    micr = any(root.glob("sub-*/micr")) or any(root.glob("sub-*/ses-*/micr"))
    return (root / "dataset_description.json").is_file() or micr


def write(
    samples: Iterable[Sample],
    root: Path,
    modality: str | None = None,
    description: dict | None = None,
) -> list[Path]:
    """Write samples as a BIDS microscopy dataset (labels under derivatives/labels).

    Each name's modality suffix is replaced by `modality`; `description` is merged into
    `dataset_description.json` (e.g. GeneratedBy). Returns the image paths in sample order.
    """
    io.write_text(
        root / "dataset_description.json",
        json.dumps(
            {
                "Name": root.name,
                "BIDSVersion": "1.9.0",
                "DatasetType": "derivative",
                **(description or {}),
            },
            indent=2,
        ),
    )
    paths = []
    for s in samples:
        path = image_path(s, root, modality)
        paths.append(path)
        if s.image is None:
            continue  # written by an interrupted run (the image file is always written last)
        io.write_text(
            path.with_suffix(".json"),
            json.dumps({"PixelSize": [s.pixel_size, s.pixel_size], "PixelSizeUnits": "um"}),
        )
        if s.labels is not None:
            seg = root / "derivatives" / "labels" / s.subject / "micr"
            for kind, mask in to_masks(s.labels):
                images.write_png(seg / f"{path.stem}_seg-{kind}-manual.png", mask)
        images.write_png(path, s.image)
    return paths


def image_path(sample: Sample, root: Path, modality: str | None = None) -> Path:
    """Where `write` puts a sample's image."""
    return root / sample.subject / "micr" / f"{rename(sample.name, modality)}.png"


def rename(name: str, modality: str | None) -> str:
    """`sub-a_sample-1_TEM` -> `sub-a_sample-1_SEM` for modality SEM (unchanged for None)."""
    if modality is None:
        return name
    head, _, suffix = name.rpartition("_")
    return f"{head}_{modality}" if head and suffix in MODALITIES else f"{name}_{modality}"
