"""Every read of Lightning state that is not public API, in one place. `tests/test_lightning_
internals.py` fails on a Lightning release that moves any of it (pyproject pins `<3`)."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher


def batches_done_this_epoch(trainer: pl.Trainer) -> int:
    """Batches of the current epoch a resumed fit has already trained on: non-zero only when a
    mid-epoch checkpoint (SIGTERM's `interrupted.ckpt`) was restored. Lightning restores its
    progress counters before it builds the loaders."""
    if not trainer.fit_loop.restarting:
        return 0
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return 0 if progress.is_last_batch else progress.current.completed


def relaunches_script(trainer: pl.Trainer) -> bool:
    """Whether fitting would start extra ranks by re-running this program from the top (the
    `ddp` launcher), which would run the whole pipeline once more per rank."""
    return isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher)
