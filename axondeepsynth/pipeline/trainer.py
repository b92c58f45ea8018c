"""Build a Lightning Trainer for one stage from the typed config."""

from __future__ import annotations

import io
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.callbacks import ModelCheckpoint, OnExceptionCheckpoint
from pytorch_lightning.plugins import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException

from axondeepsynth.config import Config
from axondeepsynth.errors import ConfigError, Terminated
from axondeepsynth.io import write_bytes
from axondeepsynth.lightning_internals import relaunches_script

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written whole or not at all: serialised in memory, then a synced temporary
    file renamed over the old one (Lightning writes in place, so a full disk or a kill mid-write
    left a truncated file that resume then died on)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes(path, buffer.getvalue(), durable=True)


def resume_from(checkpoints: Path) -> str | None:
    """The newest readable of `last.ckpt` and `interrupted.ckpt` in `checkpoints`; unreadable ones
    (truncated, foreign) are named in a warning and skipped."""
    found = [checkpoints / f"{name}.ckpt" for name in ("last", "interrupted")]
    for path in sorted((p for p in found if p.is_file()), key=lambda p: -p.stat().st_mtime):
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is skipped alike
            log.warning("%s: unreadable checkpoint skipped (%s)", path, str(err)[:200])
            continue
        return str(path)
    return None


class Stop:
    """The signal that stopped the run: the exit status is 128 + its number. While a trainer
    fits, Lightning's own SIGTERM handler stops it at a batch boundary and saves."""

    signum: int = signal.SIGTERM
    fitting: bool = False


def on_sigterm(signum: int, frame) -> None:
    """The run's SIGTERM handler: Lightning chains it behind its own while fitting."""
    if not Stop.fitting:
        raise Terminated


class StopCheckpoint(OnExceptionCheckpoint):
    """`interrupted.ckpt` when SIGTERM or a first Ctrl-C stopped training, which Lightning does
    at a batch boundary; not on other exceptions, which can strike between the D and the G step
    of a batch (a resume then starts from last.ckpt and replays the rest exactly)."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception) -> None:
        if isinstance(exception, SIGTERMException):
            super().on_exception(trainer, pl_module, exception)


class CtrlCAsSigterm(pl.Callback):
    """A first Ctrl-C in training does what SIGTERM does: finish the batch, save, exit (130); a
    second one stops at once. Installed once Lightning's own SIGTERM handler is in place; Lightning
    restores the previous SIGINT handler when fitting ends."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        Stop.fitting = stage == "fit"

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        Stop.fitting = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        Stop.signum = signal.SIGTERM
        sigterm = signal.getsignal(signal.SIGTERM)
        if (
            threading.current_thread() is not threading.main_thread()  # signals: main only
            or not callable(sigterm)
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # a background job's
        ):
            return

        def on_sigint(signum: int, frame) -> None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            log.warning("Ctrl-C: finishing this batch, then saving; Ctrl-C again stops at once")
            Stop.signum = signal.SIGINT
            sigterm(signum, frame)

        signal.signal(signal.SIGINT, on_sigint)


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
        # SIGTERM (pre-emption) or Ctrl-C: keep where training stopped, beside last.ckpt
        interrupted = StopCheckpoint(root / "checkpoints", filename="interrupted")
        callbacks += [best, last, interrupted, CtrlCAsSigterm()]  # checkpoint_callback: best
    kwargs = {k: v for k, v in asdict(cfg.trainer).items() if v is not None}
    kwargs |= {  # OWNED_BY_STAGE in the schema
        "default_root_dir": str(root),
        "logger": [instantiate(conf, save_dir=str(root)) for conf in cfg.logger.values()] or False,
        "callbacks": callbacks,
        "enable_checkpointing": monitor is not None,
        "use_distributed_sampler": False,  # our EpochSampler splits indices across ranks
        "plugins": [AtomicCheckpointIO()],
    }
    trainer = pl.Trainer(**(kwargs | overrides))
    if relaunches_script(trainer):
        raise ConfigError(
            "trainer.strategy",
            f"'{cfg.trainer.strategy}' on {cfg.trainer.devices} devices starts each extra rank by "
            "re-running the whole command; the pipeline runs once and starts its ranks per stage",
            "use trainer=ddp (trainer.strategy=ddp_spawn_find_unused_parameters_true)",
        )
    return trainer
