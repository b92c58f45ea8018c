"""nnU-Net v2 raw datasets: `imagesTr/<case>_0000.png`, `labelsTr/<case>.png`, `dataset.json`.

PNG carries no pixel size and nnU-Net has no subjects, so the writer records both per case under
`pixel_size_um` and `subjects` in `dataset.json` (nnU-Net ignores unknown keys) and the reader
takes them from there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from axondeepsynth.data import images
from axondeepsynth.data.labels import AXON, CLASS_NAMES, MYELIN
from axondeepsynth.data.records import DatasetIndex, ImageRecord, Problem, Sample

LABELS = {"background": 0, "myelin": MYELIN, "axon": AXON}


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
    names = {v: k for k, v in meta.get("labels", {}).items()}
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
    for folder in ("imagesTr", "imagesTs"):
        for image in sorted((root / folder).glob("*_0000.*")):
            case = image.name.split(".")[0][: -len("_0000")]
            label = root / "labelsTr" / f"{case}{meta.get('file_ending', '.png')}"
            index.records.append(
                ImageRecord(
                    image=image,
                    name=case,
                    subject=subjects.get(case, case),
                    layout="nnunet",
                    modality=modality,
                    pixel_size=sizes.get(case),
                    pixel_size_from=f"{meta_path} pixel_size_um.{case}",
                    labels={"index": label} if label.is_file() else {},
                    index_labels=value_to_class,
                )
            )
    return index


def write(samples: Iterable[Sample], root: Path, name: str) -> list[Path]:
    """Write samples as an nnU-Net raw dataset (labelled ones to Tr, the rest to Ts)."""
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
        "name": name,
        "channel_names": {"0": "microscopy"},
        "labels": {CLASS_NAMES[v]: v for v in sorted(CLASS_NAMES)},
        "numTraining": n_train,
        "file_ending": ".png",
        "pixel_size_um": sizes,
        "subjects": subjects,
    }
    images.write_text(root / "dataset.json", json.dumps(meta, indent=2))
    return paths


def image_path(sample: Sample, root: Path) -> Path:
    """Where `write` puts a sample's image (labelled ones go to Tr, the others to Ts)."""
    folder = "imagesTr" if sample.labels is not None else "imagesTs"
    return root / folder / f"{sample.name}_0000.png"
