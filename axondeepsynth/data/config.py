"""The datasets' schema: where each domain's images are and how they are brought to a common
scale (`data.*`), and how each training stage tiles them (`translator.data`,
`segmenter.data`, with the segmentation tiles' augmentation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from omegaconf import MISSING

from axondeepsynth.schema import check, speed

PHANTOM_PIXEL_SIZE = 0.04  # µm per pixel; a 256x256 field (10 µm) holds ~30 fibres


class Look(StrEnum):
    TEM = "TEM"
    SEM = "SEM"
    BF = "BF"


class Cache(StrEnum):
    memory = "memory"  # decoded domains held in RAM
    mmap = "mmap"  # decoded once into the run directory and memory-mapped


class TileDraw(StrEnum):
    area = "area"  # images drawn in proportion to their size
    image = "image"  # every image alike


class Resize(StrEnum):
    area = "area"  # ours: area-averaged down, cubic up
    nearest = "nearest"  # the published pipeline's


@dataclass
class PhantomConfig:
    """A synthetic nerve dataset to render at the domain's root before reading it."""

    look: Look = Look.TEM
    n_images: int = 8
    size: int = 256
    n_subjects: int = 4
    pixel_size: float = PHANTOM_PIXEL_SIZE
    seed: int = 0


@dataclass
class DatasetConfig:
    """One dataset of a domain: its root and how to bring it to the common scale.

    `modality` and `pixel_size` left unset are taken from the domain."""

    root: str = MISSING
    modality: str | None = None
    pixel_size: float | None = None
    scale: float | None = None


@dataclass
class DomainConfig:
    """Where one domain's images are and how to bring them to the common scale.

    A domain is one dataset (`root`, ...) or several (`sets`), each with its own root and scale
    or pixel size, e.g. `data.labeled.sets=[{root: a, scale: 0.1}, {root: b, scale: 0.2}]`.
    """

    root: str | None = MISSING
    modality: str | None = None  # keep only this BIDS suffix (TEM, SEM, BF, ...)
    pixel_size: float | None = None  # µm/px, for datasets that do not record it
    scale: float | None = None  # explicit resize factor; overrides data.target_pixel_size
    phantom: PhantomConfig | None = None
    sets: list[DatasetConfig] = field(default_factory=list)

    def datasets(self) -> list[DatasetConfig]:
        """The domain's datasets, domain-level modality and pixel size filled in."""
        if not self.sets:
            return [DatasetConfig(self.root, self.modality, self.pixel_size, self.scale)]
        return [
            DatasetConfig(
                s.root,
                s.modality or self.modality,
                s.pixel_size if s.pixel_size is not None else self.pixel_size,
                s.scale,
            )
            for s in self.sets
        ]

    def describe(self) -> str:
        """The root(s), for messages."""
        return ", ".join(str(d.root) for d in self.datasets())


@dataclass
class DataConfig:
    """The datasets: domains L and U and the common scale they are read at."""

    labeled: DomainConfig = field(default_factory=DomainConfig)  # domain L
    unlabeled: DomainConfig = field(default_factory=DomainConfig)  # domain U
    target_pixel_size: float | None = None  # µm/px both domains are resampled to
    resize: Resize = Resize.area
    paired: bool = False  # L and U show the same scenes: also score direct translations
    cache: Cache = speed(Cache.memory)


@dataclass
class TilesConfig:
    """How a training stage draws its tiles from the images."""

    tile_size: int = 256
    tile_draw: TileDraw = TileDraw.area
    val_tiles_per_image: int = 4
    num_workers: int = speed(0)


@dataclass
class TranslatorTilesConfig(TilesConfig):
    """The translator's tiles (`translator.data`): unpaired L and U."""

    val_images: int = 1  # images per domain held out of translator training
    geometric_aug: bool = True  # flips (and rot90 if `rot90`)
    rot90: bool = True  # the published pipeline flips only


@dataclass
class AugmentConfig:
    """Segmentation training augmentation, nnU-Net's 2-D recipe (probabilities per tile)."""

    mirror: bool = True  # h/v flips and rot90
    p_rotate: float = 0.2  # any angle
    p_scale: float = 0.2
    scale: tuple[float, float] = (0.7, 1.4)
    p_elastic: float = 0.2  # grid distortion
    p_noise: float = 0.1
    p_blur: float = 0.2
    p_brightness: float = 0.15  # multiplicative, 0.75-1.25
    p_contrast: float = 0.15
    p_lowres: float = 0.25  # down- and up-sampled by 0.5-1
    p_gamma: float = 0.3  # 0.7-1.5


@dataclass
class SegmenterTilesConfig(TilesConfig):
    """The segmentation proxy's tiles (`segmenter.data`), augmented."""

    augment: AugmentConfig = field(default_factory=AugmentConfig)


def validate_data(d: DataConfig) -> None:
    """The common scale, whichever domains the run reads."""
    check(
        d.target_pixel_size is None or d.target_pixel_size > 0,
        "data.target_pixel_size",
        "must be > 0",
    )


def validate_tiles(t: TilesConfig, key: str) -> None:
    check(t.tile_size >= 16, f"{key}.tile_size", f"must be >= 16, got {t.tile_size}")


def validate_overlap(overlap: int, tile: int, key: str) -> None:
    """Tiles of `tile` px stitched with `overlap` px on each side."""
    check(
        0 <= 2 * overlap < tile,
        key,
        f"must be in [0, tile_size/2), got {overlap} for tile_size {tile}",
    )


def validate_schedule(batch: int, per_epoch: int, epochs: int, key: str) -> None:
    """A training stage's `train.{batch_size, tiles_per_epoch, max_epochs}`."""
    check(epochs >= 1, f"{key}.max_epochs", f"must be >= 1, got {epochs}")
    check(
        batch >= 1 and per_epoch >= batch,
        f"{key}.batch_size",
        "needs 1 <= batch_size <= tiles_per_epoch",
    )


def validate_augment(a: AugmentConfig, key: str) -> None:
    lo, hi = a.scale
    check(0 < lo <= hi, f"{key}.scale", f"needs 0 < low <= high, got {(lo, hi)}")


def validate_domain(d: DomainConfig, key: str, data_dir: str) -> None:
    """One domain: its roots, scales and phantoms (generated only where this tool may write)."""
    check(
        bool(d.sets) or (d.root not in (MISSING, None) and bool(d.root)),
        f"{key}.root",
        "no dataset root given",
        f"pass {key}.root=/path/to/dataset (BIDS, AxonDeepSeg folder or nnU-Net raw), or "
        f"several as {key}.sets=[{{root: a, scale: 0.1}}, {{root: b, scale: 0.2}}]",
    )
    check(
        not (d.sets and d.phantom is not None),
        f"{key}.sets",
        "phantoms make a one-dataset domain",
        f"drop {key}.phantom or {key}.sets",
    )
    named = [(f"{key}.sets[{i}]", s) for i, s in enumerate(d.sets)] or [(key, d)]
    roots = [str(Path(str(s.root)).absolute()) for s in d.sets if s.root not in (MISSING, None)]
    twice = sorted({r for r in roots if roots.count(r) > 1})
    check(
        not twice,
        f"{key}.sets",
        f"{', '.join(twice)} is given more than once (its images would count twice)",
        "list each dataset root once",
    )
    for where, s in named:
        check(
            s.root not in (MISSING, None) and bool(s.root),
            f"{where}.root",
            "no dataset root given",
            f"pass {where}.root=/path/to/dataset",
        )
        for name in ("pixel_size", "scale"):
            value = getattr(s, name)
            check(
                value is None or 0 < value < float("inf"),
                f"{where}.{name}",
                f"must be a finite number > 0, got {value}",
            )
    if d.phantom is not None:
        check(
            d.phantom.n_images >= 1 and d.phantom.size >= 16,
            f"{key}.phantom",
            "needs n_images >= 1 and size >= 16",
        )
        root = Path(str(d.root)).absolute()
        check(
            root.is_relative_to(Path(data_dir).absolute()) or (root / "phantom.json").is_file(),
            f"{key}.root",
            f"{root} would be filled with generated phantoms ({key}.phantom is set), and it is "
            f"not a phantom folder of this tool (those live under paths.data_dir={data_dir})",
            f"to read your own images there, also pass {key}.phantom=null",
        )
