"""One domain's images: generated (phantoms) or found on disk, decoded once, at a common scale."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from axondeepsynth.config import DomainConfig
from axondeepsynth.data import formats, phantoms
from axondeepsynth.data.records import DatasetIndex, Sample, load_sample
from axondeepsynth.data.resample import resample, scale_factor
from axondeepsynth.errors import DataError

log = logging.getLogger(__name__)


def index_domain(cfg: DomainConfig) -> DatasetIndex:
    """Render the domain's phantoms if configured, then index its root."""
    root = Path(cfg.root)
    if cfg.phantom is not None:
        p = cfg.phantom
        phantoms.write_bids_dataset(
            root,
            look=p.look,
            n_images=p.n_images,
            size=p.size,
            seed=p.seed,
            pixel_size=p.pixel_size,
            n_subjects=p.n_subjects,
        )
    return formats.scan(root, cfg.modality)


def _memmap(sample: Sample, cache_dir: Path) -> Sample:
    """Swap a sample's arrays for read-only memory maps of `.npy` files in `cache_dir`."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for key in ("image", "labels"):
        array = getattr(sample, key)
        if array is not None:
            path = cache_dir / f"{sample.name}.{key}.npy"
            np.save(path, array)
            arrays[key] = np.load(path, mmap_mode="r")
    return replace(sample, **arrays)


def load_domain(
    cfg: DomainConfig,
    target_pixel_size: float | None,
    name: str,
    cache_dir: Path | None = None,
) -> list[Sample]:
    """Decode every image of a domain once, resampled to the common pixel size."""
    index = index_domain(cfg)
    for problem in index.problems:
        log.warning("%s", problem)
    if not index.records:
        raise DataError(
            cfg.root,
            f"domain {name} has no images"
            + (f" with modality {cfg.modality}" if cfg.modality else ""),
            f"check the root path and modality; run `python -m axondeepsynth.inspect {cfg.root}`",
        )
    samples = []
    for record in tqdm(index.records, desc=f"reading {name}", unit="img", leave=False):
        sample = load_sample(record, cfg.pixel_size)
        sample = resample(sample, scale_factor(sample.pixel_size, target_pixel_size, cfg.scale))
        samples.append(_memmap(sample, cache_dir / name) if cache_dir else sample)
    return samples
