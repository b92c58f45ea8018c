"""Typed configuration: the schema every Hydra config in `conf/` is merged onto.

A key that is not declared here, or a value of the wrong type, fails at compose time with the
key's name; `validate` then checks ranges and cross-field rules before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from axondeepsynth.data.phantoms import PIXEL_SIZE
from axondeepsynth.errors import ConfigError
from axondeepsynth.models.diffusion import DiffusionConfig
from axondeepsynth.models.discriminators import PatchDiscriminatorConfig, TimeDiscriminatorConfig
from axondeepsynth.models.ncsnpp import NCSNppConfig
from axondeepsynth.models.resnet import ResnetGeneratorConfig
from axondeepsynth.models.unet import UNetConfig

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
    geometric_aug: bool = True  # translator tiles: flips (and rot90 if `rot90`)
    rot90: bool = True  # the published pipeline flips only
    tile_draw: str = "area"  # area: images drawn by their size | image: each image alike
    resize: str = "area"  # area/cubic (ours) | nearest (the published pipeline's)
    paired: bool = False  # L and U show the same scenes: also score direct translations


@dataclass
class TranslationStageConfig:
    """How a trained translator is applied to whole images (stage `translate`)."""

    ckpt_path: str | None = None  # use this checkpoint instead of the run's own training
    # which of the run's own checkpoints translates: the last EMA weights (as published), or
    # the best by model.monitor (a near-identity translator scores high on cycle SSIM)
    checkpoint: str = "last"  # last | best
    dir: str | None = None  # translator + translations directory; share it across a sweep
    directions: list[str] = field(default_factory=list)  # l2u, u2l; [] = what seg.strategies need
    sampler: str | None = None  # diffusive | resnet; default: the model's
    batch_size: int | None = None  # tiles per forward pass; None: 1 on a CPU, 8 on a GPU
    precision: str = "32"  # 32 | bf16 (autocast; 1.3-1.9x faster on CPUs with avx512_bf16)
    compile: bool = False  # torch.compile the generators, weights frozen (first batch: 10-80 s)
    seed: int = 0


@dataclass
class TranslatorConfig:
    """SynDiff's networks, losses and optimisation; defaults are the published ones."""

    name: str = "syndiff"  # syndiff | cyclegan (the non-diffusive pair alone)
    diffusive: NCSNppConfig = field(default_factory=NCSNppConfig)
    resnet: ResnetGeneratorConfig = field(default_factory=ResnetGeneratorConfig)
    time_disc: TimeDiscriminatorConfig = field(default_factory=TimeDiscriminatorConfig)
    patch_disc: PatchDiscriminatorConfig = field(default_factory=PatchDiscriminatorConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    lambda_l1: float = 0.5
    r1_gamma: float = 1.0
    lazy_reg: int = 10  # R1 every lazy_reg batches
    lr_g: float = 1.6e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    lr_min: float = 1e-5  # cosine decay floor, per epoch over trainer.max_epochs
    lr_decay: bool = True
    ema_decay: float = 0.999
    # recompute generator/discriminator blocks in backward instead of storing activations:
    # identical gradients, 0.6-0.8x the memory, 2-34 % more time on a CPU (benchmarks/README.md)
    recompute: bool = True
    # opt-in: one generator pass (kept for autograd) feeds the D step and then the G step,
    # instead of a no-grad pass on one draw for D and a fresh draw for G as published; one
    # draw per batch, and the G step's adversarial terms see the D just updated on those samples
    reuse_generator_pass: bool = False
    # NHWC weights and activations (the layout tensor cores read; a wash on CPUs)
    channels_last: bool = False
    # torch.compile the four generators for training (the discriminators' R1 penalty needs a
    # double backward, which compiled graphs do not support); compiles on the first batches
    compile: bool = False
    sampler: str = "diffusive"  # diffusive | resnet: for validation and translation
    monitor: str = "val/cycle_l/ssim"  # metric that picks the best checkpoint
    monitor_mode: str = "max"
    panel_every_n_epochs: int = 1

    def identity(self) -> dict:
        """The fields that decide what is learnt, for stage keys: all but the speed-only
        switches added later, so stage directories made before them keep their key."""
        return {k: v for k, v in asdict(self).items() if k not in ("channels_last", "compile")}


@dataclass
class SegmenterConfig:
    """U-Net and optimisation; the defaults are nnU-Net's (SGD, poly decay over max_epochs)."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    optimizer: str = "sgd"  # sgd (Nesterov) | adamw (use lr=1e-3)
    lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99  # SGD only
    poly_exponent: float = 0.9
    normalize: str = "image"  # image: z-score over each whole image (nnU-Net) | fixed: [-1, 1]
    tta_flips: bool = True  # average softmax over h/v flips when predicting whole images
    window: str = "gaussian"  # tile blending when predicting: gaussian (nnU-Net) | linear


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
class SegmentationConfig:
    """The segmentation proxy and how the strategies are trained and scored."""

    net: SegmenterConfig = field(default_factory=SegmenterConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # direct | tutorship | adaptation | oracle (trained on U's own labels, k-fold: the ceiling)
    strategies: list[str] = field(default_factory=lambda: ["direct", "tutorship", "adaptation"])
    tile_size: int | None = None  # segmentation tiles; None: data.tile_size
    tile_overlap: int | None = None  # overlap of predicted tiles; None: data.tile_overlap
    # which proxy segments U: the final weights (nnU-Net's default) or the best by Dice on the
    # fold's held-out images (never for the oracle, whose held-out images are its test set)
    checkpoint: str = "last"  # last | best
    fold: Any = "all"  # a fold index 0..k-1, or "all" to run every fold in this process
    k: int = 5  # folds over the training images, split by subject
    max_epochs: int = 50
    tiles_per_epoch: int = 256
    batch_size: int = 8
    predict_batch_size: int | None = None  # tiles per pass on whole images; None: 1 CPU, 8 GPU
    n_overlays: int = 3  # image + pseudo label pictures saved per strategy and fold
    export_nnunet: bool = True  # also write U with its pseudo labels as an nnU-Net raw dataset


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
    """Where things live; the values are in conf/paths/default.yaml."""

    root_dir: str = MISSING
    data_dir: str = MISSING
    log_dir: str = MISSING
    output_dir: str = MISSING
    shared_data: str = MISSING
    min_free_gb: float = 2.0  # refuse to start a run on a disk with less free space


@dataclass
class Config:
    task_name: str = "run"
    stages: list[str] = field(default_factory=lambda: ["prepare"])
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: TranslatorConfig = field(default_factory=TranslatorConfig)
    translator: TranslationStageConfig = field(default_factory=TranslationStageConfig)
    seg: SegmentationConfig = field(default_factory=SegmentationConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    ckpt_path: str | None = None  # a path: the translator's; "last": each stage's newest

    def seg_tiling(self) -> tuple[int, int]:
        """(tile, overlap) of the segmentation proxy: its own, else the data's."""
        s, d = self.seg, self.data
        return (
            s.tile_size or d.tile_size,
            d.tile_overlap if s.tile_overlap is None else s.tile_overlap,
        )


def structured(schema: type, values: dict) -> Any:
    """Build a config dataclass from a plain dict (e.g. a checkpoint's), checked by the schema."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))


def hydra_subdir(run_dir: str) -> str:
    """Where Hydra records an invocation's config: `.hydra` in a new run directory, and
    `.hydra/rerun-<time>` when re-running into one, so that the first record is never rewritten
    (Hydra writes it before the run can check, and perhaps refuse, anything)."""
    if not (Path(run_dir) / ".hydra" / "config.yaml").is_file():
        return ".hydra"
    return f".hydra/rerun-{datetime.now():%Y-%m-%d_%H-%M-%S-%f}"


def register() -> None:
    """Make the schema available to `conf/config.yaml`'s defaults list as `schema`, and the
    resolver of `conf/hydra/default.yaml`'s `output_subdir`."""
    ConfigStore.instance().store(name="schema", node=Config)
    OmegaConf.register_new_resolver("hydra_subdir", hydra_subdir, replace=True)


def _check(ok: bool, key: str, problem: str, fix: str = "") -> None:
    if not ok:
        raise ConfigError(key, problem, fix)


def _validate_domain(d: DomainConfig, key: str) -> None:
    _check(
        bool(d.sets) or (d.root not in (MISSING, None) and bool(d.root)),
        f"{key}.root",
        "no dataset root given",
        f"pass {key}.root=/path/to/dataset (BIDS, AxonDeepSeg folder or nnU-Net raw), or "
        f"several as {key}.sets=[{{root: a, scale: 0.1}}, {{root: b, scale: 0.2}}]",
    )
    _check(
        not (d.sets and d.phantom is not None),
        f"{key}.sets",
        "phantoms make a one-dataset domain",
        f"drop {key}.phantom or {key}.sets",
    )
    named = [(f"{key}.sets[{i}]", s) for i, s in enumerate(d.sets)] or [(key, d)]
    for where, s in named:
        _check(
            s.root not in (MISSING, None) and bool(s.root),
            f"{where}.root",
            "no dataset root given",
            f"pass {where}.root=/path/to/dataset",
        )
        for name in ("pixel_size", "scale"):
            value = getattr(s, name)
            _check(
                value is None or 0 < value < float("inf"),
                f"{where}.{name}",
                f"must be a finite number > 0, got {value}",
            )
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


def _choice(value: object, key: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, key, f"unknown value '{value}'", f"use one of {', '.join(choices)}")


def _roots_from_sets(cfg: DictConfig) -> None:
    """A domain given as `sets` needs no `root`: unset the mandatory placeholder."""
    data = cfg.get("data")
    for key in ("labeled", "unlabeled"):
        domain = data.get(key) if data is not None else None
        if domain is not None and domain.get("sets") and OmegaConf.is_missing(domain, "root"):
            domain.root = None


def validate(cfg: DictConfig | Config) -> Config:
    """Resolve and check a composed config; return it as the typed object."""
    if isinstance(cfg, DictConfig):
        _roots_from_sets(cfg)
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
    for key, epochs in (
        ("trainer.max_epochs", obj.trainer.max_epochs),
        ("seg.max_epochs", obj.seg.max_epochs),
    ):
        _check(epochs >= 1, key, f"must be >= 1, got {epochs}")
    _check(
        0 <= 2 * d.tile_overlap < d.tile_size,
        "data.tile_overlap",
        f"must be in [0, tile_size/2), got {d.tile_overlap} for tile_size {d.tile_size}",
    )
    _choice(d.cache, "data.cache", ("memory", "mmap"))
    _choice(d.tile_draw, "data.tile_draw", ("area", "image"))
    _choice(d.resize, "data.resize", ("area", "nearest"))
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
    _validate_translator(obj)
    _validate_segmentation(obj)
    return obj


STRATEGIES = ("direct", "tutorship", "adaptation", "oracle")


def _validate_segmentation(obj: Config) -> None:
    s = obj.seg
    for i, strategy in enumerate(s.strategies):
        _check(
            strategy in STRATEGIES,
            f"seg.strategies[{i}]",
            f"unknown strategy '{strategy}'",
            f"use {', '.join(STRATEGIES)}",
        )
    _check(s.k >= 1, "seg.k", f"must be >= 1, got {s.k}")
    _check(
        "oracle" not in s.strategies or s.k >= 2,
        "seg.k",
        "the oracle is scored on held-out U images and needs k >= 2 folds",
        "set seg.k=2 or more",
    )
    if "oracle" in s.strategies:
        _validate_domain(obj.data.unlabeled, "data.unlabeled")
    _choice(s.checkpoint, "seg.checkpoint", ("last", "best"))
    _choice(s.net.optimizer, "seg.net.optimizer", ("sgd", "adamw"))
    _choice(s.net.normalize, "seg.net.normalize", ("image", "fixed"))
    _choice(s.net.window, "seg.net.window", ("gaussian", "linear"))
    _choice(s.net.unet.norm, "seg.net.unet.norm", ("instance", "batch"))
    lo, hi = s.augment.scale
    _check(0 < lo <= hi, "seg.augment.scale", f"needs 0 < low <= high, got {(lo, hi)}")
    _check(
        s.fold == "all" or (isinstance(s.fold, int) and 0 <= s.fold < s.k),
        "seg.fold",
        f"must be 'all' or a fold in 0..{s.k - 1}, got {s.fold!r}",
    )
    down = 2 ** (s.net.unet.depth - 1)
    tile, overlap = obj.seg_tiling()
    key = "seg.tile_size" if s.tile_size else "data.tile_size"
    _check(
        0 <= 2 * overlap < tile,
        "seg.tile_overlap",
        f"must be in [0, tile/2), got {overlap} for tile {tile}",
    )
    _check(
        tile % down == 0 and tile >= down,
        key,
        f"{tile} is not divisible by {down} (U-Net depth {s.net.unet.depth})",
        "pick a multiple of it or lower seg.net.unet.depth",
    )


def _validate_translator(obj: Config) -> None:
    m, t = obj.model, obj.translator
    _check(
        m.name in ("syndiff", "cyclegan"),
        "model.name",
        f"unknown model '{m.name}'",
        "use model=syndiff or model=cyclegan",
    )
    for key, sampler in (("model.sampler", m.sampler), ("translator.sampler", t.sampler)):
        _check(
            sampler in (None, "diffusive", "resnet"),
            key,
            f"unknown sampler '{sampler}'",
            "use diffusive or resnet",
        )
    _check(
        m.name == "syndiff" or (t.sampler or m.sampler) == "resnet",
        "model.sampler",
        "model=cyclegan has no diffusive sampler",
        "set model.sampler=resnet",
    )
    _check(
        t.batch_size is None or t.batch_size >= 1,
        "translator.batch_size",
        f"{t.batch_size} tiles per batch",
        "use a positive number, or null for the device's default",
    )
    _choice(t.checkpoint, "translator.checkpoint", ("last", "best"))
    _check(
        t.precision in ("32", "bf16"),
        "translator.precision",
        f"unknown precision '{t.precision}'",
        "use 32 or bf16",
    )
    for i, direction in enumerate(t.directions):
        _check(
            direction in ("l2u", "u2l"),
            f"translator.directions[{i}]",
            f"unknown direction '{direction}'",
            "use l2u (tutorship) or u2l (adaptation)",
        )
    tile = obj.data.tile_size
    if m.name == "syndiff" and "train_translator" in obj.stages:
        _check(
            m.diffusive.image_size == tile,
            "model.diffusive.image_size",
            f"is {m.diffusive.image_size} but data.tile_size is {tile}",
            "set both to the same size (the generator's attention sits at a fixed resolution)",
        )
    group = min(obj.data.batch_size, m.time_disc.stddev_group)
    _check(
        m.name != "syndiff" or obj.data.batch_size % group == 0,
        "data.batch_size",
        f"{obj.data.batch_size} does not split into minibatch-stddev groups of {group}",
        f"use a multiple of {m.time_disc.stddev_group} (or 1-{m.time_disc.stddev_group})",
    )
    down = 2 ** (len(m.time_disc.ch_mult) - 1)
    _check(
        m.name != "syndiff" or tile % down == 0,
        "data.tile_size",
        f"{tile} is not divisible by {down} (time discriminator depth)",
        "pick a tile size that is a multiple of it, or shorten model.time_disc.ch_mult",
    )
