"""Kill -9 in the middle of an epoch, re-run the same command with ckpt_path=last in the same run
directory: training ends with exactly the weights of a run that was never interrupted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import REPO

KILLER = """
import os, signal, pytorch_lightning as pl
class KillMidEpoch(pl.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 1:
            os.kill(os.getpid(), signal.SIGKILL)
"""
COMMAND = [
    sys.executable,
    "-m",
    "axondeepsynth.run",
    "+experiment=demo",
    "stages=[train_translator]",
    "logger=none",
    "trainer.max_epochs=3",
    "data.tile_size=32",
    "data.tile_overlap=8",
    "data.tiles_per_epoch=16",
    "data.batch_size=4",
    "data.val_tiles_per_image=1",
    "trainer.enable_progress_bar=false",
]


def run(tmp: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, f"paths.root_dir={tmp}", f"hydra.run.dir={run_dir}", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(tmp)},
    )


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "translator/checkpoints/last.ckpt", weights_only=True)
    return ckpt["state_dict"]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    (tmp_path / "killer.py").write_text(KILLER)
    straight = run(tmp_path, tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = run(tmp_path, tmp_path / "killed", "+callbacks.kill._target_=killer.KillMidEpoch")
    assert killed.returncode == -9
    assert not (tmp_path / "killed/translator/done.json").exists()
    resumed = run(tmp_path, tmp_path / "killed", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "killed")
    assert int(b["batches_seen"]) == 12  # 3 epochs x 4 batches, the lost half-epoch redone
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


TERMINATOR = """
import os, signal, pytorch_lightning as pl
class TermMidEpoch(pl.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 1:
            os.kill(os.getpid(), signal.SIGTERM)
"""


def test_sigterm_saves_a_checkpoint_before_exit(tmp_path: Path) -> None:
    (tmp_path / "terminator.py").write_text(TERMINATOR)
    result = run(tmp_path, tmp_path / "run", "+callbacks.term._target_=terminator.TermMidEpoch")
    assert result.returncode == 143 and "stopped by SIGTERM" in result.stderr + result.stdout
    ckpt = torch.load(tmp_path / "run/translator/checkpoints/interrupted.ckpt", weights_only=True)
    assert int(ckpt["state_dict"]["batches_seen"]) == 6  # epoch 0 (4 batches) + 2 of epoch 1
    last = torch.load(tmp_path / "run/translator/checkpoints/last.ckpt", weights_only=True)
    assert last["epoch"] == 0  # the exact resume point is kept
