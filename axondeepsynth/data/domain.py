"""One domain's images: generated (phantoms) or found on disk, decoded once, at a common scale."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from axondeepsynth.data import layouts, phantoms
from axondeepsynth.data.config import DatasetConfig, DomainConfig
from axondeepsynth.data.records import Sample, load_sample
from axondeepsynth.data.resample import resample, scale_factor
from axondeepsynth.errors import DataError

log = logging.getLogger(__name__)


def render_phantoms(cfg: DomainConfig) -> None:
    """Render the domain's phantoms at its root if configured (a no-op once rendered)."""
    if cfg.phantom is not None:
        p = cfg.phantom
        phantoms.write_bids_dataset(
            Path(cfg.root),
            look=p.look,
            n_images=p.n_images,
            size=p.size,
            seed=p.seed,
            pixel_size=p.pixel_size,
            n_subjects=p.n_subjects,
        )


def dataset_tags(cfg: DomainConfig) -> list[str]:
    """One tag per dataset of a multi-set domain (its folder name, numbered if repeated);
    [""] for a one-dataset domain, whose samples keep their plain names."""
    if not cfg.sets:
        return [""]
    names = [Path(s.root).name or "set" for s in cfg.sets]
    return [n if names.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(names)]


def _memmap(sample: Sample, cache_dir: Path) -> Sample:
    """Swap a sample's arrays for read-only memory maps of `.npy` files in `cache_dir`."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for key in ("image", "labels"):
        array = getattr(sample, key)
        if array is not None:
            path = cache_dir / f"{sample.key.replace('/', '__')}.{key}.npy"
            np.save(path, array)
            arrays[key] = np.load(path, mmap_mode="r")
    return replace(sample, **arrays)


def load_domain(
    cfg: DomainConfig,
    target_pixel_size: float | None,
    name: str,
    cache_dir: Path | None = None,
    resize: str = "area",
) -> list[Sample]:
    """Decode every image of a domain's datasets once, each resampled to the common scale."""
    render_phantoms(cfg)
    samples = []
    for tag, dataset in zip(dataset_tags(cfg), cfg.datasets(), strict=True):
        samples += _load_dataset(dataset, tag, target_pixel_size, name, cache_dir, resize)
    return samples


def _load_dataset(
    cfg: DatasetConfig,
    tag: str,
    target_pixel_size: float | None,
    name: str,
    cache_dir: Path | None,
    resize: str,
) -> list[Sample]:
    index = layouts.scan(Path(cfg.root), cfg.modality)
    for problem in index.problems:
        log.warning("%s", problem)
    dropped = [p for p in index.problems if p.dropped]
    if dropped:  # an image the run would silently go without
        raise DataError(dropped[0].path, dropped[0].problem, dropped[0].fix)
    if not index.records and index.problems:  # what left the domain without images
        first = index.problems[0]
        raise DataError(first.path, f"{first.problem}, so domain {name} has no images", first.fix)
    if not index.records:
        raise DataError(
            cfg.root,
            f"domain {name} has no images"
            + (f" with modality {cfg.modality}" if cfg.modality else ""),
            f"check the root path and modality; run `python -m axondeepsynth.inspect {cfg.root}`",
        )
    duplicates = layouts.duplicate_names(index)
    if duplicates:
        first, paths = next(iter(duplicates.items()))
        raise DataError(
            paths[1],
            f"{len(duplicates)} sample name(s) taken by several images, e.g. '{first}' by "
            f"{', '.join(map(str, paths))}: their outputs would overwrite each other",
            layouts.DUPLICATE_FIX,
        )
    samples = []
    for record in tqdm(index.records, desc=f"reading {name} {tag}", unit="img", leave=False):
        sample = replace(load_sample(record, cfg.pixel_size), dataset=tag)
        factor = scale_factor(sample.pixel_size, target_pixel_size, cfg.scale)
        sample = resample(sample, factor, resize)
        samples.append(_memmap(sample, cache_dir / name) if cache_dir else sample)
    return samples
