"""nnU-Net v2 raw datasets: `imagesTr/<case>_0000.png`, `labelsTr/<case>.png`, `dataset.json`.

PNG carries no pixel size and nnU-Net has no subjects, so the writer records both per case under
`pixel_size_um` and `subjects` in `dataset.json` (nnU-Net ignores unknown keys) and the reader
takes them from there.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from axondeepsynth import io
from axondeepsynth.data import images
from axondeepsynth.data.labels import AXON, CLASS_NAMES, MYELIN
from axondeepsynth.data.records import (
    DatasetIndex,
    ImageRecord,
    Problem,
    Sample,
    pixel_size_problem,
)

LABELS = {"background": 0, "myelin": MYELIN, "axon": AXON}
_FIX = (
    'write dataset.json as {"labels": {"background": 0, "myelin": 1, "axon": 2}, '
    '"file_ending": ".png", "pixel_size_um": {"<case>": <µm>}} or pass `pixel_size=`'
)


def scan(root: Path, modality: str | None = None) -> DatasetIndex:
    """Index an nnU-Net raw dataset (training and test images)."""
    index = DatasetIndex(root, "nnunet", [])
    meta_path = root / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        index.problems.append(
            Problem(meta_path, f"unreadable dataset.json ({err})", "fix its JSON syntax")
        )
        return index
    if not isinstance(meta, dict):
        index.problems.append(Problem(meta_path, "dataset.json is not a JSON object", _FIX))
        return index
    labels = meta.get("labels", {})
    if not isinstance(labels, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in labels.values()
    ):
        index.problems.append(
            Problem(
                meta_path,
                f"labels {labels!r} are not one integer value per class (region labels are "
                "not supported)",
                _FIX,
            )
        )
        return index
    names = {v: k for k, v in labels.items()}
    unknown = [n for n in names.values() if n not in LABELS]
    if unknown:
        index.problems.append(
            Problem(
                meta_path,
                f"labels {unknown} are not background/myelin/axon",
                "name the classes 'background', 'myelin' and 'axon'",
            )
        )
    value_to_class = {v: LABELS[n] for v, n in names.items() if n in LABELS}
    sizes, subjects = meta.get("pixel_size_um", {}), meta.get("subjects", {})
    for key, value in (("pixel_size_um", sizes), ("subjects", subjects)):
        if not isinstance(value, dict):
            index.problems.append(
                Problem(meta_path, f"{key} is not a mapping of case to value", _FIX)
            )
            return index
    odd = sorted(case for case, subject in subjects.items() if not isinstance(subject, str))
    if odd:
        index.problems.append(
            Problem(meta_path, f"subjects of {', '.join(odd)} are not names (strings)", _FIX)
        )
        return index
    ending = meta.get("file_ending", ".png")
    if (root / "labelsTr").is_dir() and not any((root / "labelsTr").glob(f"*{ending}")):
        index.problems.append(
            Problem(
                root / "labelsTr",
                f"no label file ends with file_ending '{ending}' of dataset.json",
                "set file_ending to the label files' extension",
            )
        )
    for folder in ("imagesTr", "imagesTs"):
        for extra in sorted((root / folder).glob("*_000[1-9].*")):
            index.problems.append(
                Problem(
                    extra,
                    "a second channel: microscopy images here have one (_0000)",
                    "keep one grayscale channel per case, or merge them into one image",
                )
            )
        for image in sorted((root / folder).glob("*_0000.*")):
            case = image.name.split(".")[0][: -len("_0000")]
            label = root / "labelsTr" / f"{case}{ending}"
            size = sizes.get(case)
            problem = None if size is None else pixel_size_problem(size, meta_path, _FIX)
            reason = problem.problem if problem is not None else ""
            if problem is not None:
                index.problems.append(replace(problem, problem=f"{case}: {problem.problem}"))
                size = None
            elif size is None:
                index.problems.append(Problem(meta_path, f"no pixel_size_um for case {case}", _FIX))
            index.records.append(
                ImageRecord(
                    image=image,
                    name=case,
                    subject=subjects.get(case, case),
                    layout="nnunet",
                    modality=modality,
                    pixel_size=size,
                    pixel_size_from=f"{meta_path} pixel_size_um.{case}",
                    pixel_size_problem=reason,
                    labels={"index": label} if label.is_file() else {},
                    index_labels=value_to_class,
                )
            )
    return index


def detect(root: Path) -> bool:
    return (root / "dataset.json").is_file() and (root / "imagesTr").is_dir()


def case_names(keys: Iterable[str]) -> dict[str, str]:
    """Each sample key's case name: the key flattened (`a/b` -> `a_b`), with a short hash of the
    key where two keys flatten alike (`a/b_c` and `a_b/c`), so no case overwrites another."""
    keys = list(keys)
    flat = {key: key.replace("/", "_") for key in keys}
    taken = Counter(flat.values())
    return {
        key: name if taken[name] == 1 else f"{name}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        for key, name in flat.items()
    }


def write(
    samples: Iterable[Sample],
    root: Path,
    modality: str | None = None,
    description: dict | None = None,
) -> list[Path]:
    """Write samples as an nnU-Net raw dataset (labelled ones to Tr, the rest to Ts), named
    by `description["Name"]` (default: the folder's name)."""
    root.mkdir(parents=True, exist_ok=True)
    sizes, subjects, n_train, paths = {}, {}, 0, []
    for sample in samples:
        labelled = sample.labels is not None
        path = image_path(sample, root)
        paths.append(path)
        if sample.image is not None:  # else written by an interrupted run
            if labelled:
                images.write_png(root / "labelsTr" / f"{sample.name}.png", sample.labels)
            images.write_png(path, sample.image)
        n_train += labelled
        sizes[sample.name], subjects[sample.name] = sample.pixel_size, sample.subject
    meta = {
        "name": (description or {}).get("Name", root.name),
        "channel_names": {"0": "microscopy"},
        "labels": {CLASS_NAMES[v]: v for v in sorted(CLASS_NAMES)},
        "numTraining": n_train,
        "file_ending": ".png",
        "pixel_size_um": sizes,
        "subjects": subjects,
    }
    io.write_text(root / "dataset.json", json.dumps(meta, indent=2))
    return paths


def image_path(sample: Sample, root: Path, modality: str | None = None) -> Path:
    """Where `write` puts a sample's image (labelled ones go to Tr, the others to Ts)."""
    folder = "imagesTr" if sample.labels is not None else "imagesTs"
    return root / folder / f"{sample.name}_0000.png"
