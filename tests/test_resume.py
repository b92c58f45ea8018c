"""Stop a training stage in the middle of a batch, between its backward pass and its optimizer
step (kill -9, SIGTERM as SLURM pre-emption sends, or Ctrl-C), re-run the same command with
resume=last in the same run directory: training ends with exactly the weights of a run that
was never interrupted."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO

STOPPER = """
import os, signal, pytorch_lightning as pl
class StopMidStep(pl.Callback):
    def __init__(self, sig, batch):
        self.sig, self.batch, self.armed = getattr(signal, sig), batch, False
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.armed = trainer.current_epoch == 1 and batch_idx == self.batch
    def on_before_optimizer_step(self, trainer, module, optimizer):
        if self.armed:  # the translator's D step: its G step is still to come
            self.armed = False
            os.kill(os.getpid(), self.sig)
"""
EXIT_CODES = {"SIGKILL": -9, "SIGTERM": 143, "SIGINT": 130}
MESSAGES = {"SIGTERM": "stopped by SIGTERM", "SIGINT": "stopped by Ctrl-C"}
COMMON = [
    sys.executable,
    "-m",
    "axondeepsynth.run",
    "+experiment=demo",
    "translator=syndiff_tiny",  # the translator with the most state to resume exactly
    "logger=none",
    "translator.data.tile_size=32",
    "translator.sample.tile_overlap=8",
    "segmenter.data.tile_size=32",
    "segmenter.predict.tile_overlap=8",
    "translator.data.val_tiles_per_image=1",
    "segmenter.data.val_tiles_per_image=1",
    "trainer.enable_progress_bar=false",
]
STAGES = {  # 3 epochs of 4 batches each; where the stage keeps its checkpoints
    "translator": (
        [
            "stages=[train_translator]",
            "translator.train.max_epochs=3",
            "translator.train.tiles_per_epoch=16",
            "translator.train.batch_size=4",
        ],
        "translator",
    ),
    "segmenter": (
        [
            "stages=[train_segmenter]",
            "segmenter.strategies=[direct]",
            "segmenter.k=1",
            "segmenter.train.max_epochs=3",
            "segmenter.train.tiles_per_epoch=16",
            "segmenter.train.batch_size=4",
            "segmenter.net.unet.base_channels=4",
            "segmenter.net.unet.depth=2",
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
        # as from a terminal: a child of a non-interactive shell may inherit an ignored SIGINT
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def checkpoint(run_dir: Path, stage: str, name: str = "last") -> dict:
    path = run_dir / STAGES[stage][1] / "checkpoints" / f"{name}.ckpt"
    return torch.load(path, weights_only=True)


def stop_mid_epoch(
    tmp: Path, run_dir: Path, stage: str, sig: str, batch: int
) -> subprocess.CompletedProcess:
    (tmp / "stopper.py").write_text(STOPPER)
    return run(
        tmp,
        run_dir,
        stage,
        "+callbacks.stop._target_=stopper.StopMidStep",
        f"+callbacks.stop.sig={sig}",
        f"+callbacks.stop.batch={batch}",
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The last checkpoint of each stage trained without interruption."""
    tmp = tmp_path_factory.mktemp("straight")
    found = {}
    for stage in STAGES:
        done = run(tmp, tmp / stage, stage)
        assert done.returncode == 0, done.stderr[-2000:]
        found[stage] = checkpoint(tmp / stage, stage)
    return found


@pytest.mark.e2e
@pytest.mark.parametrize("stage", ["translator", "segmenter"])
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_stop_mid_step_then_resume_matches_uninterrupted(
    tmp_path: Path, straight: dict, stage: str, sig: str
) -> None:
    batch = random.Random(f"{stage}/{sig}").randrange(4)  # of epoch 1's 4, seeded per case
    stopped = stop_mid_epoch(tmp_path, tmp_path / "stopped", stage, sig, batch)
    assert stopped.returncode == EXIT_CODES[sig], stopped.stderr[-2000:]
    assert not (tmp_path / "stopped" / STAGES[stage][1] / "done.json").exists()
    if sig in MESSAGES:  # the batch finished, then saved: epoch 0 (4 batches) + batch + 1
        output = stopped.stderr + stopped.stdout
        assert MESSAGES[sig] in output and "resume=last" in output
        mid = checkpoint(tmp_path / "stopped", stage, "interrupted")
        progress = mid["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
        assert progress["completed"] == batch + 1
        # after an epoch's last batch Lightning may already count the next epoch (the translator,
        # under manual optimisation, does; the segmenter does not): either resumes exactly
        assert mid["epoch"] == 1 or (batch == 3 and mid["epoch"] == 2)

    resumed = run(tmp_path, tmp_path / "stopped", stage, "resume=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = straight[stage], checkpoint(tmp_path / "stopped", stage)
    assert a["global_step"] == b["global_step"] > 0
    assert a["state_dict"].keys() == b["state_dict"].keys()
    differ = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert differ == []


def test_a_full_disk_keeps_the_previous_checkpoint_whole(tmp_path: Path, monkeypatch) -> None:
    from axondeepsynth.errors import DataError
    from axondeepsynth.pipeline.trainer import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(3)}, path)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # the new bytes are written, then the disk fills
    with pytest.raises(DataError, match="the disk is full") as err:
        AtomicCheckpointIO().save_checkpoint({"w": torch.ones(3)}, path)
    assert err.value.path == path and "resume=last" in err.value.fix
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    assert torch.load(path, weights_only=True)["w"].sum() == 0


def test_resume_skips_a_truncated_checkpoint_and_names_it(tmp_path: Path, caplog) -> None:
    from axondeepsynth.pipeline.trainer import resume_from

    torch.save({"w": torch.zeros(3)}, tmp_path / "last.ckpt")
    data = (tmp_path / "last.ckpt").read_bytes()
    (tmp_path / "interrupted.ckpt").write_bytes(data[: len(data) // 2])  # newer, but torn
    assert resume_from(tmp_path) == str(tmp_path / "last.ckpt")
    assert "interrupted.ckpt: unreadable checkpoint skipped" in caplog.text
    (tmp_path / "last.ckpt").write_bytes(b"")
    assert resume_from(tmp_path) is None
    assert resume_from(tmp_path / "absent") is None


SIGTERM_AFTER_PREPARE = """
import os, runpy, signal, sys, time
import axondeepsynth.pipeline as pipeline
import axondeepsynth.pipeline.prepare
real = pipeline.prepare.run
def prepare_then_sigterm(run):
    real(run)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    sys.exit("SIGTERM did not stop the run")
pipeline.prepare.run = prepare_then_sigterm
runpy.run_module("axondeepsynth.run", run_name="__main__")
"""


def test_sigterm_outside_training_keeps_finished_stages_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    """SIGTERM between or inside stages that do not train (translation, evaluation): exit 143
    with the same resume line Ctrl-C gives; what finished is kept and the re-run completes."""
    args = [
        "+experiment=demo",
        "stages=[prepare]",
        "logger=none",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    stopped = subprocess.run(
        [sys.executable, "-c", SIGTERM_AFTER_PREPARE, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = stopped.stderr + stopped.stdout
    assert stopped.returncode == 143, output[-2000:]
    assert "stopped by SIGTERM; finished files are kept" in output
    assert f"hydra.run.dir={tmp_path / 'run'}" in output and "Traceback" not in output
    assert (tmp_path / "run" / "data_summary.json").is_file()  # what prepare finished
    again = subprocess.run(
        [sys.executable, "-m", "axondeepsynth.run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
