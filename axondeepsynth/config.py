"""Typed configuration: the schema every Hydra config in `conf/` is merged onto.

A key that is not declared here, or a value of the wrong type, fails at compose time with the
key's name; `validate` then checks ranges and cross-field rules before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from axondeepsynth.data.phantoms import PIXEL_SIZE
from axondeepsynth.errors import ConfigError

STAGES = ("prepare", "train_translator", "translate", "train_segmenter", "evaluate")
LOOKS = ("TEM", "SEM", "BF")


@dataclass
class PhantomConfig:
    """A synthetic nerve dataset to render at the domain's root before reading it."""

    look: str = "TEM"
    n_images: int = 8
    size: int = 256
    n_subjects: int = 4
    pixel_size: float = PIXEL_SIZE
    seed: int = 0


@dataclass
class DomainConfig:
    """Where one domain's images are and how to bring them to the common scale."""

    root: str = MISSING
    modality: str | None = None  # keep only this BIDS suffix (TEM, SEM, BF, ...)
    pixel_size: float | None = None  # µm/px, for datasets that do not record it
    scale: float | None = None  # explicit resize factor; overrides data.target_pixel_size
    phantom: PhantomConfig | None = None


@dataclass
class DataConfig:
    labeled: DomainConfig = field(default_factory=DomainConfig)  # domain L
    unlabeled: DomainConfig = field(default_factory=DomainConfig)  # domain U
    target_pixel_size: float | None = None  # µm/px both domains are resampled to
    tile_size: int = 256
    tile_overlap: int = 32
    batch_size: int = 1
    num_workers: int = 0
    tiles_per_epoch: int = 256
    val_images: int = 1  # images per domain held out of translator training
    val_tiles_per_image: int = 4
    cache: str = "memory"  # memory | mmap (decoded once into the run directory)
    geometric_aug: bool = True
    intensity_aug: bool = False


@dataclass
class TrainerConfig:
    """The pytorch_lightning.Trainer arguments this project sets."""

    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 10
    max_steps: int = -1
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    deterministic: bool = False
    enable_progress_bar: bool = True


@dataclass
class PathsConfig:
    root_dir: str = "${hydra:runtime.cwd}"
    data_dir: str = "${paths.root_dir}/data"
    log_dir: str = "${paths.root_dir}/logs"
    output_dir: str = "${hydra:runtime.output_dir}"
    shared_data: str = "${oc.env:AXONDEEPSYNTH_SHARED_DATA,${paths.root_dir}/../shared/data}"


@dataclass
class Config:
    task_name: str = "run"
    stages: list[str] = field(default_factory=lambda: ["prepare"])
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    ckpt_path: str | None = None


def register() -> None:
    """Make the schema available to `conf/config.yaml`'s defaults list as `schema`."""
    ConfigStore.instance().store(name="schema", node=Config)


def _check(ok: bool, key: str, problem: str, fix: str = "") -> None:
    if not ok:
        raise ConfigError(key, problem, fix)


def _validate_domain(d: DomainConfig, key: str) -> None:
    _check(
        d.root != MISSING and bool(d.root),
        f"{key}.root",
        "no dataset root given",
        f"pass {key}.root=/path/to/dataset (BIDS, AxonDeepSeg folder or nnU-Net raw)",
    )
    for name in ("pixel_size", "scale"):
        value = getattr(d, name)
        _check(value is None or value > 0, f"{key}.{name}", f"must be > 0, got {value}")
    if d.phantom is not None:
        _check(
            d.phantom.look in LOOKS,
            f"{key}.phantom.look",
            f"unknown look '{d.phantom.look}'",
            f"use one of {', '.join(LOOKS)}",
        )
        _check(
            d.phantom.n_images >= 1 and d.phantom.size >= 16,
            f"{key}.phantom",
            "needs n_images >= 1 and size >= 16",
        )


def validate(cfg: DictConfig | Config) -> Config:
    """Resolve and check a composed config; return it as the typed object."""
    try:
        obj: Config = OmegaConf.to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    except MissingMandatoryValue as err:
        raise ConfigError(
            err.full_key,
            "is required but was not given",
            f"pass {err.full_key}=... on the command line",
        ) from None
    for i, stage in enumerate(obj.stages):
        _check(
            stage in STAGES,
            f"stages[{i}]",
            f"unknown stage '{stage}'",
            f"use stages from {', '.join(STAGES)}",
        )
    d = obj.data
    _validate_domain(d.labeled, "data.labeled")
    if "train_translator" in obj.stages or "translate" in obj.stages:
        _validate_domain(d.unlabeled, "data.unlabeled")
    _check(d.tile_size >= 16, "data.tile_size", f"must be >= 16, got {d.tile_size}")
    _check(
        0 <= 2 * d.tile_overlap < d.tile_size,
        "data.tile_overlap",
        f"must be in [0, tile_size/2), got {d.tile_overlap} for tile_size {d.tile_size}",
    )
    _check(
        d.cache in ("memory", "mmap"),
        "data.cache",
        f"unknown cache '{d.cache}'",
        "use memory or mmap",
    )
    _check(
        d.batch_size >= 1 and d.tiles_per_epoch >= d.batch_size,
        "data.batch_size",
        "needs 1 <= batch_size <= tiles_per_epoch",
    )
    _check(
        d.target_pixel_size is None or d.target_pixel_size > 0,
        "data.target_pixel_size",
        "must be > 0",
    )
    return obj
