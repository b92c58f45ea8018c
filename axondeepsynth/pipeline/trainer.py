"""Build a Lightning Trainer for one stage from the typed config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from pytorch_lightning.callbacks import ModelCheckpoint, OnExceptionCheckpoint

from axondeepsynth.config import Config


@contextmanager
def logger_files_in(out: Path) -> Iterator[None]:
    """W&B writes debug logs and staged media under HOME unless told otherwise: keep them in the
    run directory while this run lasts (a user's own WANDB_* settings win; the next job of a
    multirun in this process gets its own directory)."""
    dirs = {"WANDB_CACHE_DIR": out / "wandb" / "cache", "WANDB_DATA_DIR": out / "wandb" / "data"}
    unset = [var for var in dirs if var not in os.environ]
    os.environ.update({var: str(dirs[var]) for var in unset})
    try:
        yield
    finally:
        for var in unset:
            os.environ.pop(var, None)


def build_trainer(
    cfg: Config, root: Path, monitor: str | None = None, mode: str = "max", **overrides: Any
) -> pl.Trainer:
    """Trainer writing under `root`: loggers, user callbacks and, when a `monitor` is given,
    `checkpoints/last.ckpt` + `checkpoints/best-*.ckpt`. `overrides` win over the config."""
    root.mkdir(parents=True, exist_ok=True)
    callbacks = [instantiate(conf) for conf in cfg.callbacks.values()]
    if monitor is not None:
        best = ModelCheckpoint(
            dirpath=root / "checkpoints",
            filename="best-{epoch:03d}",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            auto_insert_metric_name=False,
        )
        # its own callback: a monitored one's save_last is skipped when the score did not improve
        last = ModelCheckpoint(
            dirpath=root / "checkpoints",
            filename="last",
            save_top_k=1,
            enable_version_counter=False,
        )
        # SIGTERM (pre-emption), Ctrl-C or an error: keep where training stopped, beside last.ckpt
        interrupted = OnExceptionCheckpoint(root / "checkpoints", filename="interrupted")
        callbacks += [best, last, interrupted]  # trainer.checkpoint_callback is the first
    kwargs = {k: v for k, v in asdict(cfg.trainer).items() if v is not None}
    kwargs |= {
        "default_root_dir": str(root),
        "logger": [instantiate(conf, save_dir=str(root)) for conf in cfg.logger.values()] or False,
        "callbacks": callbacks,
        "enable_checkpointing": monitor is not None,
        "use_distributed_sampler": False,  # our EpochSampler splits indices across ranks
    }
    return pl.Trainer(**(kwargs | overrides))
