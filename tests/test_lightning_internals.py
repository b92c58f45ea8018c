"""What `axondeepsynth/lightning_internals.py` reads of Lightning's private state, checked on
the installed release: a release that moves it fails here, not in a user's resumed run."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from axondeepsynth.lightning_internals import batches_done_this_epoch, relaunches_script


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w * batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Data(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def train_dataloader(self) -> DataLoader:
        self.seen.append(batches_done_this_epoch(self.trainer))
        return DataLoader(torch.ones(5, 1), batch_size=1)


class SaveAt(pl.Callback):
    """Saves before batch `batch` of the first epoch, as SIGTERM's checkpoint does."""

    def __init__(self, path: Path, batch: int) -> None:
        self.path, self.batch = path, batch

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.batch:
            trainer.save_checkpoint(self.path)
            trainer.should_stop = True


def _trainer(tmp: Path, **kw) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp),
        **kw,
    )


def test_a_mid_epoch_checkpoint_reports_the_batches_already_trained(tmp_path: Path) -> None:
    first = Data()
    _trainer(tmp_path, callbacks=[SaveAt(tmp_path / "mid.ckpt", batch=3)]).fit(Tiny(), first)
    resumed = Data()
    _trainer(tmp_path).fit(Tiny(), resumed, ckpt_path=tmp_path / "mid.ckpt", weights_only=True)
    assert first.seen == [0] and resumed.seen == [3]


@pytest.mark.parametrize(("strategy", "relaunch"), [("ddp", True), ("ddp_spawn", False)])
def test_a_launcher_that_reruns_the_script_is_recognised(
    tmp_path: Path, strategy: str, relaunch: bool
) -> None:
    trainer = _trainer(tmp_path, accelerator="cpu", devices=2, strategy=strategy)
    assert relaunches_script(trainer) is relaunch
