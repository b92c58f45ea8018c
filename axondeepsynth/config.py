"""The run's typed configuration: the schema every Hydra config in `conf/` is merged onto,
composed from each part's own (`data/config.py`, `training/config.py`, `nets/config.py`,
`postprocess.py`) and the stages' settings declared here.

A key that is not declared, a value of the wrong type or a choice that is not one of its enum's
values fails at compose time with the key's name; `validation.validate` then checks ranges,
cross-field rules and that every chosen stage and strategy has what it needs, before any work.
Defaults live in the schema only; `conf/` holds the values that differ from them. Field roles
(`SPEED`, `PREDICT`) are `schema.py`'s. Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from axondeepsynth.data.config import AugmentConfig, DataConfig
from axondeepsynth.postprocess import PostprocessConfig
from axondeepsynth.schema import PREDICT, predict, speed
from axondeepsynth.training.config import NnUNetConfig, SegmenterConfig, TranslatorConfig

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
    lightning = "lightning"  # our U-Net (seg.net), in-framework, tested on CPU
    nnunet = "nnunet"  # nnU-Net v2 through its Python API (seg.nnunet; an optional extra)


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
