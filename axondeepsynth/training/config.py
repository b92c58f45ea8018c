"""What the LightningModules are built from: the translator (`translator.{net,train}`), the
segmentation proxy (`segmenter.net`) and nnU-Net as the proxy (`segmenter.nnunet`). Imports no
torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from axondeepsynth.nets.config import (
    DiffusionConfig,
    NCSNppConfig,
    PatchDiscriminatorConfig,
    ResnetGeneratorConfig,
    TimeDiscriminatorConfig,
    UNetConfig,
)
from axondeepsynth.schema import check, speed


class Mode(StrEnum):
    min = "min"
    max = "max"


@dataclass
class TranslatorNetConfig:
    """The translator's networks and diffusion schedule; defaults are SynDiff's published ones.
    Each translator reads the parts it has (CycleGAN: the ResNet generators and PatchGANs)."""

    diffusive: NCSNppConfig = field(default_factory=NCSNppConfig)
    resnet: ResnetGeneratorConfig = field(default_factory=ResnetGeneratorConfig)
    time_disc: TimeDiscriminatorConfig = field(default_factory=TimeDiscriminatorConfig)
    patch_disc: PatchDiscriminatorConfig = field(default_factory=PatchDiscriminatorConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)


@dataclass
class TranslatorTrainConfig:
    """The translator's losses, optimisation and schedule; defaults are SynDiff's published
    ones."""

    max_epochs: int = 10  # of tiles_per_epoch tiles each
    tiles_per_epoch: int = 256
    batch_size: int = 1
    lambda_l1: float = 0.5
    # weight of the structure term (training/structure.py) tying each translation's edges to
    # its source's; 0: the published losses. The CPU recipes set it (experiments/README.md)
    lambda_struct: float = 0.0
    r1_gamma: float = 1.0
    lazy_reg: int = 10  # R1 every lazy_reg batches
    lr_g: float = 1.6e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    lr_min: float = 1e-5  # cosine decay floor, per epoch over max_epochs
    lr_decay: bool = True
    ema_decay: float = 0.999
    # opt-in: one generator pass (kept for autograd) feeds the D step and then the G step,
    # instead of a no-grad pass on one draw for D and a fresh draw for G as published; one
    # draw per batch, and the G step's adversarial terms see the D just updated on those samples
    reuse_generator_pass: bool = False
    # the sampler of validation, and of translation unless translator.sample.sampler says
    # otherwise (syndiff: diffusive | resnet; cyclegan: resnet)
    sampler: str = "diffusive"
    monitor: str = "val/cycle_l/ssim"  # metric that picks the best checkpoint
    monitor_mode: Mode = Mode.max
    # recompute generator/discriminator blocks in backward instead of storing activations:
    # identical gradients, 0.6-0.8x the memory, 2-34 % more time on a CPU (benchmarks/README.md)
    recompute: bool = speed(True)
    # NHWC weights and activations (the layout tensor cores read; a wash on CPUs)
    channels_last: bool = speed(False)
    # torch.compile the four generators for training (the discriminators' R1 penalty needs a
    # double backward, which compiled graphs do not support); compiles on the first batches
    compile: bool = speed(False)
    panel_every_n_epochs: int = speed(1)


@dataclass
class TranslatorConfig:
    """What a translator module is built from and its checkpoint records: `name` picks a
    registered translator (`axondeepsynth/training/translators/`)."""

    name: str = "syndiff"
    net: TranslatorNetConfig = field(default_factory=TranslatorNetConfig)
    train: TranslatorTrainConfig = field(default_factory=TranslatorTrainConfig)


def nested(cfg: dict) -> dict:
    """A translator checkpoint's config as `TranslatorConfig` reads it: those saved before
    `translator.{net,train}` held every field at the top."""
    if "net" in cfg:
        return cfg
    net = ("diffusive", "resnet", "time_disc", "patch_disc", "diffusion")
    return {
        "name": cfg["name"],
        "net": {k: v for k, v in cfg.items() if k in net},
        "train": {k: v for k, v in cfg.items() if k not in (*net, "name")},
    }


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
class SegmenterConfig:
    """U-Net and optimisation; the defaults are nnU-Net's (SGD, poly decay over
    segmenter.train.max_epochs)."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    optimizer: Optimizer = Optimizer.sgd  # adamw: use lr=1e-3
    lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99  # SGD only
    poly_exponent: float = 0.9
    normalize: Normalize = Normalize.image


@dataclass
class NnUNetConfig:
    """nnU-Net v2 as the proxy (segmenter.backend=nnunet): the published recipe is its 2d
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


def validate_translator(m: TranslatorConfig, key: str) -> None:
    """What holds for every translator; each checks the rest itself (`check` in its module)."""
    t = m.train
    check(
        t.lambda_struct >= 0, f"{key}.train.lambda_struct", f"must be >= 0, got {t.lambda_struct}"
    )


def validate_nnunet(n: NnUNetConfig, key: str) -> None:
    for name in ("epochs", "iterations_per_epoch", "val_iterations_per_epoch", "save_every"):
        value = getattr(n, name)
        check(value is None or value >= 1, f"{key}.{name}", f"must be >= 1, got {value}")
    check(n.processes >= 1, f"{key}.processes", f"must be >= 1, got {n.processes}")


@dataclass
class TrainerConfig:
    """Every `pytorch_lightning.Trainer` argument but those the stages set (`OWNED_BY_STAGE`),
    e.g. `trainer.gradient_clip_val=1.0`; None leaves Lightning's default. Passed to the trainer
    of both training stages (each sets its own `max_epochs`: `<role>.train.max_epochs`)."""

    accelerator: str = "cpu"
    strategy: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    precision: str = "32-true"
    fast_dev_run: Any = False
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
    "max_epochs",
    "logger",
    "callbacks",
    "plugins",
    "default_root_dir",
    "enable_checkpointing",
    "use_distributed_sampler",
    "model_registry",
)
