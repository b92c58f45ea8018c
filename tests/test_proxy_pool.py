"""Proxies trained several at a time (`segmenter.train.processes`), each in a spawned process:
every fold is made and recorded as one after another would be, and a killed run leaves no
worker training behind it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, TINY_RUN, overridden

pytestmark = pytest.mark.e2e

PROXIES = overridden(
    TINY_RUN,
    "stages=[prepare,train_segmenter]",
    "segmenter.strategies=[direct,oracle]",
    "segmenter.fold=all",
    "segmenter.train.processes=2",
)
OUTPUT = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}


def command(run_dir: Path, *extra: str) -> list[str]:
    """The run into `run_dir`, its phantoms generated beside it."""
    return [
        sys.executable,
        "-m",
        "axondeepsynth.run",
        *PROXIES,
        f"paths.root_dir={run_dir.parent}",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def status(pid: int) -> dict[str, str]:
    """A process's /proc status fields; none once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def alive(pid: int) -> bool:
    return not status(pid).get("State", "Z").startswith("Z")  # a zombie has exited


def children(pid: int) -> list[int]:
    """Live processes whose parent is `pid`."""
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [c for c in pids if status(c).get("PPid", "").strip() == str(pid) and alive(c)]


def test_two_proxies_at_a_time_make_and_record_every_fold(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = os.environ | {"OMP_NUM_THREADS": "2"}
    done = subprocess.run(command(run_dir), cwd=REPO, **OUTPUT, env=env)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "training 2 proxies at a time, 1 torch thread(s) each" in done.stdout
    folds = [run_dir / "seg" / s / f"fold{k}" for s in ("L", "U") for k in (0, 1)]
    for fold in folds:
        assert (fold / "done.json").is_file() and (fold / "checkpoints" / "last.ckpt").is_file()
        assert f"segmenter {fold.parent.name} fold {fold.name[-1]}: val/dice_mean" in done.stdout
    again = subprocess.run(command(run_dir), cwd=REPO, **OUTPUT, env=env)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count("reusing") == len(folds)  # nothing trained twice


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_a_stopped_run_leaves_no_worker_and_a_rerun_finishes(tmp_path: Path, sig: str) -> None:
    """kill -9 takes the workers with the run; SIGTERM (pre-emption) stops them at a batch,
    saved as one proxy trained in the run would be (`interrupted.ckpt`)."""
    run_dir = tmp_path / "run"
    slow = ("segmenter.train.max_epochs=30", "resume=last")  # seconds per proxy
    run = subprocess.Popen(
        command(run_dir, *slow), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("seg/*/fold*/checkpoints/last.ckpt")):  # workers are training
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    workers = children(run.pid)
    assert len(workers) >= 2  # the pool's processes (and its resource tracker)
    os.kill(run.pid, getattr(signal, sig))
    assert run.wait(timeout=120) == {"SIGKILL": -9, "SIGTERM": 143}[sig]
    deadline = time.monotonic() + 60
    while left := [w for w in workers if alive(w)]:
        assert time.monotonic() < deadline, [status(w).get("Name") for w in left]
        time.sleep(0.5)
    if sig == "SIGTERM":
        assert list(run_dir.glob("seg/*/fold*/checkpoints/interrupted.ckpt"))
    done = subprocess.run(command(run_dir, *slow), cwd=REPO, **OUTPUT)
    assert done.returncode == 0, done.stdout[-3000:]
    folds = [run_dir / "seg" / s / f"fold{k}" for s in "LU" for k in (0, 1)]
    assert all((fold / "done.json").is_file() for fold in folds)
