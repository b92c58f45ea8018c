"""What the LightningModules are built from: the translator (`model.*`), the segmentation proxy
(`seg.net`) and nnU-Net as the proxy (`seg.nnunet`). Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from axondeepsynth.nets.config import (
    DiffusionConfig,
    NCSNppConfig,
    PatchDiscriminatorConfig,
    ResnetGeneratorConfig,
    TimeDiscriminatorConfig,
    UNetConfig,
)
from axondeepsynth.schema import check, predict, speed


class Mode(StrEnum):
    min = "min"
    max = "max"


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


def validate_translator(m: TranslatorConfig, key: str) -> None:
    """What holds for every translator; each checks the rest itself (`check` in its module)."""
    check(m.lambda_struct >= 0, f"{key}.lambda_struct", f"must be >= 0, got {m.lambda_struct}")


def validate_nnunet(n: NnUNetConfig, key: str) -> None:
    for name in ("epochs", "iterations_per_epoch", "val_iterations_per_epoch", "save_every"):
        value = getattr(n, name)
        check(value is None or value >= 1, f"{key}.{name}", f"must be >= 1, got {value}")
    check(n.processes >= 1, f"{key}.processes", f"must be >= 1, got {n.processes}")
