"""`make bench-gpu`: the figures one short device run should record, in at most 10 minutes.

    python -m benchmarks.gpu [--fit-batches 400]

1. SynDiff at the published sizes, 256² tiles, batch 4 (`benchmarks.__main__.gpu_steps`): the
   published loop in fp32; ours in fp32, bf16-mixed, + channels_last, without recomputation,
   + compile. It/s, peak GPU memory, TFLOP/s and their share of the card's dense bf16 peak (MFU).
2. A short real TEM -> SEM fit of the full SynDiff on `../shared/data` (`+experiment=sem_real_cpu
   translator=syndiff trainer=gpu`, 256² tiles, `--fit-batches` batches of 4), then the
   translation of every image both ways with the diffusive sampler. Wall time of each stage,
   batches/s; the run directory keeps the translations and the training's panels.
Each row and the fit run in processes of their own, so one that runs out of memory is recorded
and the rest still run; the fit also stops at FIT_LIMIT_S. Saved to logs/bench/gpu_<time>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.__main__ import ROOT, gpu_steps, machine

FIT_LIMIT_S = 300  # the fit and its translation together


def real_fit(batches: int, run_dir: Path, *overrides: str) -> dict:
    """The full SynDiff trained `batches` batches on real TEM -> SEM, then translating
    (`overrides` last: a smoke test runs it small on a CPU)."""
    cmd = [
        sys.executable, "-m", "axondeepsynth.run", "+experiment=sem_real_cpu",
        "translator=syndiff", "trainer=gpu", "logger=csv", "trainer.enable_progress_bar=false",
        "stages=[prepare,train_translator,translate]", "translator.restarts=0",
        "translator.data.tile_size=256", "translator.train.batch_size=4",
        "translator.train.max_epochs=1", f"translator.train.tiles_per_epoch={4 * batches}",
        "translator.sample.sampler=diffusive", "translator.sample.precision=bf16",
        f"hydra.run.dir={run_dir}", *overrides,
    ]  # fmt: skip
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=FIT_LIMIT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"not finished in {FIT_LIMIT_S} s", "run_dir": str(run_dir)}
    wall = time.perf_counter() - start
    if out.returncode != 0:
        return {"error": f"exit {out.returncode}: {out.stderr[-500:]}", "run_dir": str(run_dir)}
    stages = dict(re.findall(r"stage (\w+) took ([\d.]+) s", out.stdout + out.stderr))
    result = {"batches": batches, "wall_s": wall, "run_dir": str(run_dir)}
    result |= {f"{name}_s": float(s) for name, s in stages.items()}
    if "train_translator_s" in result:
        result["batches_per_s"] = batches / result["train_translator_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fit-batches", type=int, default=400)
    a = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no GPU here: `make bench-gpu` is for a machine with one")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    results = {"machine": machine(), "date": stamp, "gpu": gpu_steps()}
    results["real_fit"] = real_fit(a.fit_batches, ROOT / "logs" / "bench" / f"gpu_fit_{stamp}")
    out = ROOT / "logs" / "bench" / f"gpu_{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
