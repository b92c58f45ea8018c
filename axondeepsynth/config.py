"""The run's typed configuration: the schema every Hydra config in `conf/` is merged onto,
composed from each part's own (`data/config.py`, `training/config.py`, `nets/config.py`,
`postprocess.py`) and the stages' settings declared here. Groups are named by role: `data` (the
datasets), `translator` and `segmenter` (each: what is trained, on which tiles, how it is
applied), `self_train` and `export` (those stages'), `trainer` (both training stages'); a key of
the old layout is refused with its new place (`moved.py`).

A key that is not declared, a value of the wrong type or a choice that is not one of its enum's
values fails at compose time with the key's name; `validation.validate` then checks ranges,
cross-field rules and that every chosen stage and strategy has what it needs, before any work.
Defaults live in the schema only; `conf/` holds the values that differ from them. Fields
tagged `SPEED` (`schema.py`) are in no stage key. Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from axondeepsynth.data.config import DataConfig, SegmenterTilesConfig, TranslatorTilesConfig
from axondeepsynth.postprocess import PostprocessConfig
from axondeepsynth.schema import speed
from axondeepsynth.training.config import (
    NnUNetConfig,
    SegmenterConfig,
    TrainerConfig,
    TranslatorConfig,
    Window,
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


class Which(StrEnum):
    last = "last"
    best = "best"


class Direction(StrEnum):
    l2u = "l2u"  # L translated into U's look (tutorship)
    u2l = "u2l"  # U translated into L's look (adaptation)


class Backend(StrEnum):
    lightning = "lightning"  # our U-Net (segmenter.net), in-framework, tested on CPU
    nnunet = "nnunet"  # nnU-Net v2 through its Python API (segmenter.nnunet; an optional extra)


@dataclass
class SampleConfig:
    """How a trained translator is applied to whole images (stage `translate`)."""

    ckpt_path: str | None = None  # translate with this checkpoint instead of training one
    # which of the run's own checkpoints translates: the last EMA weights (as published), or
    # the best by translator.train.monitor (a near-identity translator scores high on cycle SSIM)
    which: Which = Which.last
    sampler: str | None = None  # one of the translator's samplers; None: translator.train's
    tile_overlap: int = 32  # of the tiles (translator.data.tile_size) stitched into an image
    # tiles per forward pass; None: 1 on a CPU, 8 on a GPU. Not SPEED: the batch shapes the
    # noise stream of the diffusive sampler
    batch_size: int | None = None
    precision: str = "32"  # 32 | bf16 (autocast; 1.3-1.9x faster on CPUs with avx512_bf16)
    seed: int = 0
    # translations drawn per image where a strategy segments them (U->L): the models' softmax
    # is averaged over the draws, and the confidence maps show where they disagree. Needs a
    # stochastic sampler (syndiff's diffusive); training sets use the first draw
    samples: int = 1
    directions: list[Direction] = field(default_factory=list)  # []: what the strategies need
    # translator + translations directory; share it across a sweep (where, not what)
    dir: str | None = speed(None)
    compile: bool = speed(False)  # torch.compile the generators, weights frozen (10-80 s first)


@dataclass
class TranslatorGroup(TranslatorConfig):
    """`translator.*`: what is trained (name, net, train: a module's own config), on which
    tiles (data), how it is applied (sample)."""

    data: TranslatorTilesConfig = field(default_factory=TranslatorTilesConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    # a translator trained by this run whose L->U translations fail the label-separation check
    # (translator_check.py) is trained again with the next seed, up to this many times; the
    # first that passes is used (each in `<translator dir>-seed<N>`)
    restarts: int = 0
    # start from a trained translator's checkpoint: the networks it shares with this one (SynDiff
    # from a pair, translator=cyclegan_tiny: the ResNet generators, PatchGANs and their EMA)
    # take its weights, the others keep their initialisation. Keyed by the file's content
    init_from: str | None = None

    def module(self) -> TranslatorConfig:
        """The part a translator module is built from and its checkpoint records."""
        return TranslatorConfig(self.name, self.net, self.train)


@dataclass
class SegmenterTrainConfig:
    """The Lightning proxy's schedule."""

    max_epochs: int = 50
    tiles_per_epoch: int = 256
    batch_size: int = 8
    # Lightning's precision for the proxies alone (bf16-mixed: autocast on CPUs with
    # avx512_bf16 or AMX, and GPUs); None: trainer.precision, as the translator trains
    precision: str | None = None
    # proxies trained at once on a CPU, each in its own process with torch's threads shared
    # out (2 on 2 cores: 1.29x the proxies per minute); 1: one after another in the run's own
    # process
    processes: int = speed(1)


@dataclass
class PredictConfig:
    """How trained proxies segment whole images and what is made of their output."""

    tile_overlap: int = 32  # of the tiles (segmenter.data.tile_size) stitched into an image
    # which proxy segments U: the final weights (nnU-Net's default) or the best by Dice on the
    # fold's held-out images (never for the oracle, whose held-out images are its test set)
    which: Which = Which.last
    tta_flips: bool = True  # average softmax over h/v flips
    window: Window = Window.gaussian  # tile blending
    precision: str = "32"  # 32 | bf16 (autocast; the Lightning proxy on CPUs with avx512_bf16)
    # with segmenter.fold "all", each strategy that labels all of U is also scored with its k
    # folds' proxies averaged (nnU-Net's way; pseudo_labels/<strategy>/ensemble/): what it
    # makes then depends less on which L images one fold left out, and that is the kept model
    ensemble: bool = True
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    batch_size: int | None = speed(None)  # tiles per pass; None: 1 on a CPU, 8 on a GPU
    n_overlays: int = speed(3)  # image + pseudo label pictures saved per strategy and fold


@dataclass
class SegmenterGroup:
    """`segmenter.*`: the segmentation proxy, its strategies and folds, how it is trained
    (net, train, data; nnunet for that backend) and applied (predict)."""

    backend: Backend = Backend.lightning  # who trains and applies the proxy
    # names from axondeepsynth/strategies.py: direct, tutorship, adaptation, fused,
    # self_training (after the others, from one's pseudo labels), oracle
    strategies: list[str] = field(default_factory=lambda: ["direct", "tutorship", "adaptation"])
    k: int = 5  # folds over the training images, split by subject
    fold: Any = "all"  # a fold index 0..k-1, or "all" to run every fold here
    net: SegmenterConfig = field(default_factory=SegmenterConfig)  # lightning's
    train: SegmenterTrainConfig = field(default_factory=SegmenterTrainConfig)  # lightning's
    data: SegmenterTilesConfig = field(default_factory=SegmenterTilesConfig)  # lightning's
    nnunet: NnUNetConfig = field(default_factory=NnUNetConfig)  # nnunet's
    predict: PredictConfig = field(default_factory=PredictConfig)


@dataclass
class SelfTrainConfig:
    """Stage `self_train`: the strategy self_training learns from, and how."""

    # the strategy whose pseudo labels (its ensemble's, else its first fold's) self_training
    # learns from; in the key of that training set through its origin, nowhere else
    teacher: str = "recommended"
    # pixels its teacher's models were less sure of than this (their averaged softmax, the
    # written `_confidence.png`) are left out of the loss; 0 keeps every pixel. In the
    # origin's key with the masked labels
    min_confidence: float = 0.0


@dataclass
class ExportConfig:
    """Stage `export`: what the run hands on."""

    # the kept model, copied to <run>/model/ for `python -m axondeepsynth.segment`: a chosen
    # strategy's proxies (and the translator its inputs need); "recommended": self_training
    # where the run has it, else the strategy the report recommends; null: none
    model: str | None = "recommended"
    # None: the ensemble where the run scores it, else the first fold this run scores
    fold: int | None = None
    nnunet: bool = True  # also write U with its pseudo labels as an nnU-Net raw dataset


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
    # "last": each training stage resumes from its newest checkpoint; a path: the translator
    # resumes from that checkpoint
    resume: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    translator: TranslatorGroup = field(default_factory=TranslatorGroup)
    segmenter: SegmenterGroup = field(default_factory=SegmenterGroup)
    self_train: SelfTrainConfig = field(default_factory=SelfTrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)


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
