"""Image panels: saved as PNG under the trainer's root dir and sent to W&B / TensorBoard."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor

from axondeepsynth.data.images import write_png


def log_panel(module: pl.LightningModule, key: str, images: Tensor, caption: str = "") -> Path:
    """Stack a [B, 1, H, W] batch of [0, 1] panels vertically and publish it (rank 0 only)."""
    if module.global_rank != 0:
        return Path()
    grid = images.detach().float().clamp(0, 1).cpu()[:, 0]
    grid = grid.reshape(-1, grid.shape[-1]).numpy()
    name = f"{key.replace('/', '_')}_epoch{module.current_epoch:03d}.png"
    path = write_png(Path(module.trainer.default_root_dir) / "panels" / name, grid)
    for logger in module.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key, [grid], caption=[caption], step=module.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, grid[None], module.current_epoch)
    return path
