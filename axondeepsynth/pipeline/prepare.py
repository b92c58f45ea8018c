"""Stage `prepare`: render/index both domains, decode them once and record what was read."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from axondeepsynth import io
from axondeepsynth.data import images
from axondeepsynth.data.labels import to_axonmyelin
from axondeepsynth.data.records import Sample
from axondeepsynth.errors import DataError
from axondeepsynth.pipeline.context import Run
from axondeepsynth.strategies import TRAINING_SETS

log = logging.getLogger(__name__)


def _describe(samples: list[Sample]) -> dict:
    return {
        "n_images": len(samples),
        "n_labelled": sum(s.labels is not None for s in samples),
        "subjects": sorted({s.subject for s in samples}),
        "images": [
            {
                "name": s.name,
                "source": str(s.source),
                "height": s.image.shape[0],
                "width": s.image.shape[1],
                "pixel_size_um": s.pixel_size,
                "labelled": s.labels is not None,
            }
            for s in samples
        ],
    }


def preview(samples: dict[str, list[Sample]], path: Path, size: int = 192) -> Path:
    """Save a montage: one row per domain, the first images and (if any) their label maps."""
    rows = []
    for domain in samples.values():
        tiles = []
        for s in domain[:3]:
            crop = s.image[:size, :size]
            tiles.append(np.pad(crop, ((0, size - crop.shape[0]), (0, size - crop.shape[1]))))
            if s.labels is not None:
                lab = to_axonmyelin(s.labels[:size, :size]) / 255.0
                tiles.append(np.pad(lab, ((0, size - lab.shape[0]), (0, size - lab.shape[1]))))
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    montage = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]))) for r in rows])
    return images.write_png(path, montage)


def check_labels(run: Run, summary: dict) -> None:
    """Stop before any training when a configured strategy needs labels a domain lacks."""
    if "train_segmenter" not in run.cfg.stages:
        return
    for name, info in summary.items():
        wanted = [
            s.name
            for s in run.strategies
            if any(
                TRAINING_SETS[t].labels_from == name and not TRAINING_SETS[t].pseudo
                for t in s.train_sets
            )
        ]
        if wanted and info["n_labelled"] == 0:
            domain = run.domain_config(name)
            roots = " ".join(str(d.root) for d in domain.datasets())  # inspect's arguments
            raise DataError(
                domain.describe(),
                f"domain {name} has no labelled image, but {', '.join(wanted)} train on its labels",
                f"add masks (`python -m axondeepsynth.inspect {roots}` shows what was found) or "
                "drop these from segmenter.strategies",
            )


def run(run: Run) -> None:
    """Load L (and U when configured) and write `data_summary.json` + `data_preview.png`."""
    u = run.cfg.data.unlabeled
    names = ["L"] + (["U"] if u.sets or u.root not in ("???", "", None) else [])
    domains = {name: run.domain(name) for name in names}
    summary = {
        name: {"config": asdict(run.domain_config(name)), **_describe(samples)}
        for name, samples in domains.items()
    }
    check_labels(run, summary)
    io.write_text(run.out / "data_summary.json", json.dumps(summary, indent=2))
    preview(domains, run.out / "data_preview.png")
    for name, info in summary.items():
        log.info(
            "domain %s: %d images (%d labelled) from %s",
            name,
            info["n_images"],
            info["n_labelled"],
            info["config"]["root"],
        )
