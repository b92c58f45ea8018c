"""Typed configuration: the schema every Hydra config in `conf/` is merged onto.

A key that is not declared here, a value of the wrong type or a choice that is not one of its
enum's values fails at compose time with the key's name; `validate` then checks ranges,
cross-field rules and that every chosen stage and strategy has what it needs, before any work.
Defaults live here only; `conf/` holds the values that differ from them. Imports no torch.

Fields tagged `SPEED` (how fast, how verbose) or `PREDICT` (how a trained model is applied) are
left out of the stage keys that decide whether a stage's earlier output can be reused
(`identity`); the rest of the config is in them.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from axondeepsynth import strategies
from axondeepsynth.errors import ConfigError
from axondeepsynth.nets.config import (
    DiffusionConfig,
    NCSNppConfig,
    PatchDiscriminatorConfig,
    ResnetGeneratorConfig,
    TimeDiscriminatorConfig,
    UNetConfig,
)

STAGES = (
    "prepare",
    "train_translator",
    "translate",
    "train_segmenter",
    "evaluate",
    "self_train",
    "export",
)
TRANSLATE = "add translate to stages (a translator.dir of an earlier run is reused)"
PHANTOM_PIXEL_SIZE = 0.04  # µm per pixel; a 256x256 field (10 µm) holds ~30 fibres
SPEED = {"role": "speed"}  # changes speed or what is shown, never a number
PREDICT = {"role": "predict"}  # changes how trained models are applied, not what they learn


def speed(default: Any) -> Any:
    return field(default=default, metadata=SPEED)


def predict(default: Any) -> Any:
    return field(default=default, metadata=PREDICT)


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


class Which(StrEnum):
    last = "last"
    best = "best"


class Direction(StrEnum):
    l2u = "l2u"  # L translated into U's look (tutorship)
    u2l = "u2l"  # U translated into L's look (adaptation)


class Mode(StrEnum):
    min = "min"
    max = "max"


class Backend(StrEnum):
    lightning = "lightning"  # our U-Net (seg.net), in-framework, tested on CPU
    nnunet = "nnunet"  # nnU-Net v2 through its Python API (seg.nnunet; an optional extra)


class Optimizer(StrEnum):
    sgd = "sgd"  # Nesterov, nnU-Net's
    adamw = "adamw"


class Normalize(StrEnum):
    image = "image"  # z-score over each whole image (nnU-Net)
    fixed = "fixed"  # [-1, 1]


class Window(StrEnum):
    gaussian = "gaussian"  # nnU-Net's tile blending
    linear = "linear"


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
    labeled: DomainConfig = field(default_factory=DomainConfig)  # domain L
    unlabeled: DomainConfig = field(default_factory=DomainConfig)  # domain U
    target_pixel_size: float | None = None  # µm/px both domains are resampled to
    tile_size: int = 256
    tile_overlap: int = 32
    batch_size: int = 1
    num_workers: int = speed(0)
    tiles_per_epoch: int = 256
    val_images: int = 1  # images per domain held out of translator training
    val_tiles_per_image: int = 4
    cache: Cache = speed(Cache.memory)
    geometric_aug: bool = True  # translator tiles: flips (and rot90 if `rot90`)
    rot90: bool = True  # the published pipeline flips only
    tile_draw: TileDraw = TileDraw.area
    resize: Resize = Resize.area
    paired: bool = False  # L and U show the same scenes: also score direct translations


@dataclass
class TranslationStageConfig:
    """How a trained translator is applied to whole images (stage `translate`)."""

    ckpt_path: str | None = None  # use this checkpoint instead of the run's own training
    # which of the run's own checkpoints translates: the last EMA weights (as published), or
    # the best by model.monitor (a near-identity translator scores high on cycle SSIM)
    checkpoint: Which = Which.last
    # translator + translations directory; share it across a sweep (where, not what)
    dir: str | None = speed(None)
    directions: list[Direction] = field(default_factory=list)  # []: what seg.strategies need
    sampler: str | None = None  # one of the translator's samplers; default: the model's
    # tiles per forward pass; None: 1 on a CPU, 8 on a GPU. Not SPEED: the batch shapes the
    # noise stream of the diffusive sampler
    batch_size: int | None = None
    precision: str = "32"  # 32 | bf16 (autocast; 1.3-1.9x faster on CPUs with avx512_bf16)
    compile: bool = speed(False)  # torch.compile the generators, weights frozen (10-80 s first)
    seed: int = 0
    # translations drawn per image where a strategy segments them (U->L): the models' softmax
    # is averaged over the draws, and the confidence maps show where they disagree. Needs a
    # stochastic sampler (syndiff's diffusive); training sets use the first draw
    samples: int = 1
    # a translator trained by this run whose L->U translations fail the label-separation check
    # (translator_check.py) is trained again with the next seed, up to this many times; the
    # first that passes is used (each in `<translator dir>-seed<N>`)
    restarts: int = 0


@dataclass
class TranslatorConfig:
    """The translator's networks, losses and optimisation; defaults are SynDiff's published ones.

    `name` picks a registered translator (`axondeepsynth/training/translators/`); each reads the
    fields it needs (CycleGAN: the ResNet generators and PatchGANs)."""

    name: str = "syndiff"
    diffusive: NCSNppConfig = field(default_factory=NCSNppConfig)
    resnet: ResnetGeneratorConfig = field(default_factory=ResnetGeneratorConfig)
    time_disc: TimeDiscriminatorConfig = field(default_factory=TimeDiscriminatorConfig)
    patch_disc: PatchDiscriminatorConfig = field(default_factory=PatchDiscriminatorConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    lambda_l1: float = 0.5
    # weight of the structure term (training/structure.py) tying each translation's edges to
    # its source's; 0: the published losses. The CPU recipes set it (experiments/README.md)
    lambda_struct: float = 0.0
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
    recompute: bool = speed(True)
    # opt-in: one generator pass (kept for autograd) feeds the D step and then the G step,
    # instead of a no-grad pass on one draw for D and a fresh draw for G as published; one
    # draw per batch, and the G step's adversarial terms see the D just updated on those samples
    reuse_generator_pass: bool = False
    # NHWC weights and activations (the layout tensor cores read; a wash on CPUs)
    channels_last: bool = speed(False)
    # torch.compile the four generators for training (the discriminators' R1 penalty needs a
    # double backward, which compiled graphs do not support); compiles on the first batches
    compile: bool = speed(False)
    sampler: str = "diffusive"  # for validation and translation (syndiff: diffusive | resnet)
    monitor: str = "val/cycle_l/ssim"  # metric that picks the best checkpoint
    monitor_mode: Mode = Mode.max
    panel_every_n_epochs: int = speed(1)


@dataclass
class SegmenterConfig:
    """U-Net and optimisation; the defaults are nnU-Net's (SGD, poly decay over max_epochs)."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    optimizer: Optimizer = Optimizer.sgd  # adamw: use lr=1e-3
    lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99  # SGD only
    poly_exponent: float = 0.9
    normalize: Normalize = Normalize.image
    tta_flips: bool = predict(True)  # average softmax over h/v flips when predicting images
    window: Window = predict(Window.gaussian)  # tile blending when predicting


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
class NnUNetConfig:
    """nnU-Net v2 as the proxy (seg.backend=nnunet): the published recipe is its 2d
    configuration, default planner and trainer (1000 epochs of 250 batches); the overrides make
    short runs (a CPU test, a smoke run) without a trainer class of one's own."""

    trainer: str = "nnUNetTrainer"  # found by nnU-Net (nnUNet_extTrainer for one's own)
    planner: str = "ExperimentPlanner"  # e.g. nnUNetPlannerResEncM
    # the planner's VRAM budget (nnU-Net's -gpu_memory_target); None: its own (8 GB). A
    # smaller one plans smaller batches: what a CPU run wants
    gpu_memory_target_gb: float | None = None
    configuration: str = "2d"
    epochs: int | None = None  # None: the trainer's
    iterations_per_epoch: int | None = None  # None: the trainer's
    val_iterations_per_epoch: int | None = None  # None: the trainer's
    save_every: int | None = speed(None)  # epochs between resumable checkpoints; None: its 50
    processes: int = speed(2)  # preprocessing and augmentation workers


@dataclass
class PostprocessConfig:
    """How pseudo labels are cleaned axon by axon (`axondeepsynth/postprocess.py`); off by
    default, recorded with the kept model."""

    # myelin grows outward up to this far (µm), into background pixels the image's own myelin
    # intensity explains better than its background (postprocess.grow_myelin)
    myelin_from_image_um: float = 0.0
    fill_holes: bool = False  # pixels enclosed by one axon become axon
    min_axon_area_um2: float = 0.0  # smaller axons become background
    drop_unmyelinated: bool = False  # axons with no myelin within ring_um become background
    ring_um: float = 0.3

    @property
    def active(self) -> bool:
        return (
            self.myelin_from_image_um > 0
            or self.fill_holes
            or self.min_axon_area_um2 > 0
            or self.drop_unmyelinated
        )


@dataclass
class SegmentationConfig:
    """The segmentation proxy and how the strategies are trained and scored."""

    backend: Backend = Backend.lightning  # who trains and applies the proxy
    net: SegmenterConfig = field(default_factory=SegmenterConfig)  # lightning's
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # lightning's
    nnunet: NnUNetConfig = field(default_factory=NnUNetConfig)  # nnunet's
    # names from axondeepsynth/strategies.py: direct, tutorship, adaptation, fused,
    # self_training (after the others, from one's pseudo labels), oracle
    strategies: list[str] = field(
        default_factory=lambda: ["direct", "tutorship", "adaptation"], metadata=PREDICT
    )
    tile_size: int | None = None  # segmentation tiles; None: data.tile_size
    # overlap of predicted tiles; None: data.tile_overlap
    tile_overlap: int | None = predict(None)
    # which proxy segments U: the final weights (nnU-Net's default) or the best by Dice on the
    # fold's held-out images (never for the oracle, whose held-out images are its test set)
    checkpoint: Which = predict(Which.last)
    fold: Any = predict("all")  # a fold index 0..k-1, or "all" to run every fold here
    # with fold "all", each strategy that labels all of U is also scored with its k folds'
    # proxies averaged (nnU-Net's way; pseudo_labels/<strategy>/ensemble/): what it makes
    # then depends less on which L images one fold left out, and that is the kept model
    ensemble: bool = predict(True)
    k: int = 5  # folds over the training images, split by subject
    max_epochs: int = 50
    tiles_per_epoch: int = 256
    batch_size: int = 8
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig, metadata=PREDICT)
    # tiles per pass on whole images; None: 1 on a CPU, 8 on a GPU
    predict_batch_size: int | None = speed(None)
    n_overlays: int = speed(3)  # image + pseudo label pictures saved per strategy and fold
    # also write U with its pseudo labels as an nnU-Net raw dataset
    export_nnunet: bool = predict(True)
    # the kept model, copied to <run>/model/ for `python -m axondeepsynth.segment`: a chosen
    # strategy's proxies of one fold (and the translator its inputs need); "recommended":
    # self_training where the run has it, else the strategy the report recommends; null: none
    export: str | None = predict("recommended")
    # None: the ensemble where the run scores it, else the first fold this run scores
    export_fold: int | None = predict(None)
    # the strategy whose pseudo labels (its ensemble's, else its first fold's) self_training
    # learns from; in the key of that training set through its origin, nowhere else
    self_train_from: str = predict("recommended")
    # self_training leaves out of its loss the pixels its teacher's models were less sure of
    # than this (their averaged softmax, the written `_confidence.png`); 0 keeps every pixel.
    # In the origin's key with the masked labels
    self_train_min_confidence: float = predict(0.0)


@dataclass
class TrainerConfig:
    """Every `pytorch_lightning.Trainer` argument but those the stages set (`OWNED_BY_STAGE`),
    e.g. `trainer.gradient_clip_val=1.0`; None leaves Lightning's default. Passed to the trainer
    of every training stage (the segmenter's `max_epochs` is `seg.max_epochs`)."""

    accelerator: str = "cpu"
    strategy: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    precision: str = "32-true"
    fast_dev_run: Any = False
    max_epochs: int = 10
    min_epochs: int | None = None
    max_steps: int = -1
    min_steps: int | None = None
    max_time: Any = None
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    limit_predict_batches: Any = None
    overfit_batches: Any = 0.0
    val_check_interval: Any = None
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int | None = speed(None)
    log_every_n_steps: int = speed(10)
    enable_progress_bar: bool = speed(True)
    enable_model_summary: bool | None = speed(None)
    accumulate_grad_batches: int = 1
    gradient_clip_val: Any = None
    gradient_clip_algorithm: str | None = None
    deterministic: Any = False
    benchmark: bool | None = speed(None)
    inference_mode: bool = speed(True)
    profiler: Any = speed(None)
    detect_anomaly: bool = speed(False)
    barebones: bool = speed(False)
    sync_batchnorm: bool = False
    reload_dataloaders_every_n_epochs: int = 0
    enable_autolog_hparams: bool = speed(True)


# set by the stages (`pipeline/trainer.py`), so not configurable as trainer.*
OWNED_BY_STAGE = (
    "logger",
    "callbacks",
    "plugins",
    "default_root_dir",
    "enable_checkpointing",
    "use_distributed_sampler",
    "model_registry",
)


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


def identity(obj: Any, leave_out: tuple[str, ...] = ("speed",)) -> Any:
    """A config part as plain data for stage keys, without the fields whose role is in
    `leave_out` (`speed` always: how fast or verbose a stage runs never changes its key)."""
    if is_dataclass(obj):
        return {
            f.name: identity(getattr(obj, f.name), leave_out)
            for f in fields(obj)
            if f.metadata.get("role") not in leave_out
        }
    if isinstance(obj, list | tuple):
        return [identity(v, leave_out) for v in obj]
    if isinstance(obj, dict):
        return {k: identity(v, leave_out) for k, v in obj.items()}
    return obj


def plain(obj: Any) -> dict:
    """A config dataclass as plain JSON types (enums as their values, tuples as lists): what
    checkpoints store, so that they load with torch.load(weights_only=True)."""
    return json.loads(json.dumps(asdict(obj)))


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


def _validate_domain(d: DomainConfig, key: str, data_dir: str) -> None:
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
    roots = [str(Path(str(s.root)).absolute()) for s in d.sets if s.root not in (MISSING, None)]
    twice = sorted({r for r in roots if roots.count(r) > 1})
    _check(
        not twice,
        f"{key}.sets",
        f"{', '.join(twice)} is given more than once (its images would count twice)",
        "list each dataset root once",
    )
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
            d.phantom.n_images >= 1 and d.phantom.size >= 16,
            f"{key}.phantom",
            "needs n_images >= 1 and size >= 16",
        )
        root = Path(str(d.root)).absolute()
        _check(
            root.is_relative_to(Path(data_dir).absolute()) or (root / "phantom.json").is_file(),
            f"{key}.root",
            f"{root} would be filled with generated phantoms ({key}.phantom is set), and it is "
            f"not a phantom folder of this tool (those live under paths.data_dir={data_dir})",
            f"to read your own images there, also pass {key}.phantom=null",
        )


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
    _validate_stages(obj)
    d = obj.data
    _validate_domain(d.labeled, "data.labeled", obj.paths.data_dir)
    needs_u = {"train_translator", "translate", "evaluate"} & set(obj.stages)
    if needs_u or "oracle" in obj.seg.strategies:
        _validate_domain(d.unlabeled, "data.unlabeled", obj.paths.data_dir)
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


def _validate_stages(obj: Config) -> None:
    """Known stages in pipeline order, each with what it needs made by an earlier one."""
    for i, stage in enumerate(obj.stages):
        _check(
            stage in STAGES,
            f"stages[{i}]",
            f"unknown stage '{stage}'",
            f"use stages from {', '.join(STAGES)}",
        )
    order = [STAGES.index(stage) for stage in obj.stages]
    _check(
        order == sorted(set(order)),
        "stages",
        f"{obj.stages} is not in pipeline order (or repeats a stage)",
        f"list them in the order {', '.join(STAGES)}",
    )
    for i, name in enumerate(obj.seg.strategies):
        _check(
            name in strategies.STRATEGIES,
            f"seg.strategies[{i}]",
            f"unknown strategy '{name}'",
            f"use {', '.join(strategies.STRATEGIES)}",
        )
    chosen = [strategies.STRATEGIES[name] for name in obj.seg.strategies]
    stages, t = set(obj.stages), obj.translator
    made = set(t.directions) or {d for s in chosen for d in s.translations}

    def need(stage: str, before: str, why: str, fix: str) -> None:
        _check(stage in stages, "stages", f"{before} {why}", fix)

    if "translate" in stages and not t.ckpt_path:
        need(
            "train_translator",
            "translate",
            "needs a translator",
            "add train_translator to stages, or pass translator.ckpt_path=...",
        )
    for s in chosen:  # the translations its training sets and its inputs come from
        trained_on = {strategies.TRAINING_SETS[t].translation for t in s.train_sets}
        shown = {strategies.INPUT_TRANSLATION[i] for _, i in s.models}
        for stage, needed in (("train_segmenter", trained_on), ("evaluate", shown)):
            for direction in sorted(d for d in needed if d) if stage in stages else ():
                what = {"l2u": "L->U", "u2l": "U->L"}[direction]
                need("translate", stage, f"for {s.name} needs the {what} translation", TRANSLATE)
                _check(
                    direction in made,
                    "translator.directions",
                    f"leaves out {direction}, which {s.name} needs",
                    f"add {direction} or leave translator.directions empty",
                )
    if "evaluate" in stages:
        need(
            "train_segmenter",
            "evaluate",
            "needs the segmenters",
            "add train_segmenter to stages (finished folds are reused, not retrained)",
        )
    for stage, why in (
        ("self_train", "learns from its scores"),
        ("export", "keeps a model it scored"),
    ):
        if stage in stages:
            need("evaluate", stage, why, "add evaluate to stages (finished folds are reused)")
    if "evaluate" in stages and any(s.pseudo for s in chosen):
        need(
            "self_train",
            "self_training",
            "is trained after evaluate scores its teacher",
            "add self_train to stages, after evaluate",
        )


def _validate_segmentation(obj: Config) -> None:
    s = obj.seg
    _check(s.k >= 1, "seg.k", f"must be >= 1, got {s.k}")
    _validate_postprocess(s.postprocess)
    _check(
        s.backend != "nnunet" or importlib.util.find_spec("nnunetv2") is not None,
        "seg.backend",
        "nnunet needs nnU-Net v2, which is not installed",
        "pip install -e '.[nnunet]' (or keep seg.backend=lightning)",
    )
    _check(
        s.export in (None, "recommended", *s.strategies),
        "seg.export",
        f"'{s.export}' is not one of this run's strategies",
        f"use recommended, null, or one of {', '.join(s.strategies)}",
    )
    runs = range(s.k) if s.fold == "all" else [s.fold]
    _check(
        s.export_fold is None or s.export_fold in runs,
        "seg.export_fold",
        f"fold {s.export_fold} is not scored by this run (folds {list(runs)})",
        "pick one of them, or null for the first",
    )
    for key in (
        "epochs",
        "iterations_per_epoch",
        "val_iterations_per_epoch",
        "save_every",
        "processes",
    ):
        value = getattr(s.nnunet, key)
        _check(value is None or value >= 1, f"seg.nnunet.{key}", f"must be >= 1, got {value}")
    for name in s.strategies:
        _check(
            not strategies.STRATEGIES[name].held_out or s.k >= 2,
            "seg.k",
            f"{name} is scored on held-out U images and needs k >= 2 folds",
            "set seg.k=2 or more",
        )
    teachers = [n for n in s.strategies if not strategies.STRATEGIES[n].held_out]
    _check(
        "self_training" not in s.strategies
        or (s.self_train_from == "recommended" and teachers)
        or s.self_train_from in teachers,
        "seg.self_train_from",
        f"'{s.self_train_from}' cannot teach self_training in this run",
        f"use recommended or one of {', '.join(teachers) or 'direct, tutorship, ...'}, "
        "listed in seg.strategies",
    )
    _check(
        0 <= s.self_train_min_confidence < 1,
        "seg.self_train_min_confidence",
        f"must be in [0, 1), got {s.self_train_min_confidence}",
        "softmax confidence of 3 classes lies in [1/3, 1]: try 0.6-0.9, or 0 to keep all",
    )
    _check(
        s.self_train_min_confidence == 0 or s.backend == Backend.lightning,
        "seg.self_train_min_confidence",
        "only the Lightning proxy leaves unsure pixels out of its loss",
        "set seg.backend=lightning, or seg.self_train_min_confidence=0",
    )
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


def _validate_postprocess(p: PostprocessConfig) -> None:
    _check(
        p.min_axon_area_um2 >= 0,
        "seg.postprocess.min_axon_area_um2",
        f"must be >= 0 µm², got {p.min_axon_area_um2}",
    )
    _check(p.ring_um > 0, "seg.postprocess.ring_um", f"must be > 0 µm, got {p.ring_um}")
    _check(
        p.myelin_from_image_um >= 0,
        "seg.postprocess.myelin_from_image_um",
        f"must be >= 0 µm, got {p.myelin_from_image_um}",
    )


def _validate_translator(obj: Config) -> None:
    """The translation stage's own checks, then those of the translator to train (imported
    here: the schema itself imports no torch). A given translator.ckpt_path is checked when
    it is loaded, before the first stage."""
    m, t = obj.model, obj.translator
    _check(
        t.batch_size is None or t.batch_size >= 1,
        "translator.batch_size",
        f"{t.batch_size} tiles per batch",
        "use a positive number, or null for the device's default",
    )
    _check(t.samples >= 1, "translator.samples", f"must be >= 1, got {t.samples}")
    _check(t.restarts >= 0, "translator.restarts", f"must be >= 0, got {t.restarts}")
    _check(m.lambda_struct >= 0, "model.lambda_struct", f"must be >= 0, got {m.lambda_struct}")
    _check(
        t.precision in ("32", "bf16"),
        "translator.precision",
        f"unknown precision '{t.precision}'",
        "use 32 or bf16",
    )
    _check(
        obj.trainer.num_nodes == 1,
        "trainer.num_nodes",
        f"{obj.trainer.num_nodes} nodes: the pipeline runs once and spawns each training stage's "
        "ranks on this node",
        "use one node with several devices (trainer=ddp)",
    )
