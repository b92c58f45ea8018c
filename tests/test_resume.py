"""Stop a training stage in the middle of an epoch (kill -9, or SIGTERM as SLURM pre-emption
sends), re-run the same command with ckpt_path=last in the same run directory: training ends with
exactly the weights of a run that was never interrupted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO

STOPPER = """
import os, signal, pytorch_lightning as pl
class StopMidEpoch(pl.Callback):
    def __init__(self, sig):
        self.sig = getattr(signal, sig)
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 1:
            os.kill(os.getpid(), self.sig)
"""
COMMON = [
    sys.executable,
    "-m",
    "axondeepsynth.run",
    "+experiment=demo",
    "logger=none",
    "data.tile_size=32",
    "data.tile_overlap=8",
    "data.val_tiles_per_image=1",
    "trainer.enable_progress_bar=false",
]
STAGES = {  # 3 epochs of 4 batches each; where the stage keeps its checkpoints
    "translator": (
        [
            "stages=[train_translator]",
            "trainer.max_epochs=3",
            "data.tiles_per_epoch=16",
            "data.batch_size=4",
        ],
        "translator",
    ),
    "segmenter": (
        [
            "stages=[train_segmenter]",
            "seg.strategies=[direct]",
            "seg.k=1",
            "seg.max_epochs=3",
            "seg.tiles_per_epoch=16",
            "seg.batch_size=4",
            "seg.net.unet.base_channels=4",
            "seg.net.unet.depth=2",
        ],
        "seg/L/fold0",
    ),
}


def run(tmp: Path, run_dir: Path, stage: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMON, *STAGES[stage][0], f"paths.root_dir={tmp}", f"hydra.run.dir={run_dir}", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(tmp)},
    )


def checkpoint(run_dir: Path, stage: str, name: str = "last") -> dict:
    path = run_dir / STAGES[stage][1] / "checkpoints" / f"{name}.ckpt"
    return torch.load(path, weights_only=True)


def stop_mid_epoch(tmp: Path, run_dir: Path, stage: str, sig: str) -> subprocess.CompletedProcess:
    (tmp / "stopper.py").write_text(STOPPER)
    return run(
        tmp,
        run_dir,
        stage,
        "+callbacks.stop._target_=stopper.StopMidEpoch",
        f"+callbacks.stop.sig={sig}",
    )


@pytest.mark.parametrize("stage", ["translator", "segmenter"])
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_stop_mid_epoch_then_resume_matches_uninterrupted(
    tmp_path: Path, stage: str, sig: str
) -> None:
    straight = run(tmp_path, tmp_path / "straight", stage)
    assert straight.returncode == 0, straight.stderr[-2000:]

    stopped = stop_mid_epoch(tmp_path, tmp_path / "stopped", stage, sig)
    assert stopped.returncode == (-9 if sig == "SIGKILL" else 143), stopped.stderr[-2000:]
    assert not (tmp_path / "stopped" / STAGES[stage][1] / "done.json").exists()
    if sig == "SIGTERM":  # saved where it stopped: epoch 0 (4 batches) + 2 batches of epoch 1
        assert "stopped by SIGTERM" in stopped.stderr + stopped.stdout
        mid = checkpoint(tmp_path / "stopped", stage, "interrupted")
        assert mid["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"] == 2
        assert mid["epoch"] == 1

    resumed = run(tmp_path, tmp_path / "stopped", stage, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = checkpoint(tmp_path / "straight", stage), checkpoint(tmp_path / "stopped", stage)
    assert a["global_step"] == b["global_step"] > 0
    assert a["state_dict"].keys() == b["state_dict"].keys()
    differ = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert differ == []
