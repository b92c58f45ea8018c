"""`make bench`: every benchmark in one run, each in its own process, then the ratios.

    python -m benchmarks [--full] [--skip NAME ...]
`--full` adds the 256 px, batch 4 training rows; `--train 128x1 256x4` picks the rows. With a
GPU, the GPU rows run too (fp32 / bf16-mixed / channels_last / compile it/s and TFLOP/s).
Results are printed and saved to logs/bench/<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TRAIN_MODES = {  # ours: default (recompute), without recompute, reuse_generator_pass, bf16
    "default": [],
    "no-recompute": ["--no-recompute"],
    "reuse": ["--reuse"],
    # bf16 autocast: on a CPU without avx512_bf16 or AMX it runs emulated, slower than fp32
    "bf16-mixed, no-recompute": ["--precision", "bf16-mixed", "--no-recompute"],
}
# The published code's own iteration on this machine as issue 5 gives it (batch 1, seconds):
# its networks are not ours, so it is context for our rows, not a ratio measured in this run.
PUBLISHED_CODE_S = {(128, 1): (25.0, 29.0), (256, 1): (120.0, 120.0)}
GPU_CONFIG = ["--size", "256", "--batch", "4"]
GPU_MODES = {  # ours, on a GPU
    "fp32": ["--precision", "32-true"],
    "bf16-mixed": ["--precision", "bf16-mixed"],
    "bf16-mixed, channels_last": ["--precision", "bf16-mixed", "--channels-last"],
    "bf16-mixed, channels_last, no recompute": [
        "--precision", "bf16-mixed", "--channels-last", "--no-recompute"
    ],
    "bf16-mixed, channels_last, no recompute, compile": [
        "--precision", "bf16-mixed", "--channels-last", "--no-recompute", "--compile"
    ],
}  # fmt: skip
BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}  # dense
MOSAIC = "4000"  # px a side: `segment` with the demo's kept model (benchmarks/README.md: 20000²)
RESNET_VARIANTS = ["8", "8:bf16", "8:compile", "8:bf16:compile", "1:bf16:compile"]


def run(module: str, *args: str) -> dict:
    """One benchmark process; a failure (e.g. killed for memory) is recorded, not fatal."""
    cmd = [sys.executable, "-m", module, *args]
    print("$", " ".join(cmd[2:]), flush=True)
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        why = "killed (out of memory?)" if out.returncode == -9 else out.stderr[-300:]
        result = {"error": f"exit {out.returncode}: {why}"}
    else:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    print("  ", json.dumps(result), flush=True)
    return result


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def train_steps(configs: list[str]) -> list[dict]:
    """Rows for each `SIZExBATCH`: each of our modes against the published loop, which runs
    before and after them (a shared machine's speed drifts by tens of % within minutes: the
    ratio takes the mean of both, and `reference_drift` says how far they moved)."""
    rows = []
    for config in configs:
        size, batch = (int(v) for v in config.split("x"))
        iters = "5"  # two warm-up iterations, then the median of three
        args = ["--size", str(size), "--batch", str(batch), "--iters", iters]
        before = run("benchmarks.train_step", "--impl", "reference", *args)
        ours_by_mode = {
            mode: run("benchmarks.train_step", "--impl", "ours", *args, *flags)
            for mode, flags in TRAIN_MODES.items()
        }
        after = run("benchmarks.train_step", "--impl", "reference", *args)
        ref = _bracket(before, after)
        for mode, ours in ours_by_mode.items():
            row = {"size": size, "batch": batch, "mode": mode}
            for who, r in (("ours", ours), ("reference", ref)):
                row[f"{who}_s"] = r.get("sec_per_iter")
                row[f"{who}_peak_mb"] = r.get("peak_rss_mb")
                row[f"{who}_error"] = r.get("error")
            row["reference_drift"] = ref.get("drift")
            if "error" not in ours and "error" not in ref:
                row["time_ratio"] = ours["sec_per_iter"] / ref["sec_per_iter"]
                row["memory_ratio"] = ours["peak_rss_mb"] / ref["peak_rss_mb"]
            rows.append(row)
    return rows


def _bracket(before: dict, after: dict) -> dict:
    """The published loop's two runs as one: mean time, larger peak, and after / before."""
    if "error" in before or "error" in after:
        return before if "error" in before else after
    return {
        "sec_per_iter": (before["sec_per_iter"] + after["sec_per_iter"]) / 2,
        "peak_rss_mb": max(before["peak_rss_mb"], after["peak_rss_mb"]),
        "drift": after["sec_per_iter"] / before["sec_per_iter"],
    }


def train_flops() -> list[dict]:
    """FLOPs of one 128² batch-1 iteration (without R1), the published loop then our fp32
    modes (bf16 runs the no-recompute mode's FLOPs)."""
    args = ["--size", "128", "--batch", "1", "--iters", "2", "--flops"]
    ref = run("benchmarks.train_step", "--impl", "reference", *args)
    rows = []
    for mode, flags in TRAIN_MODES.items():
        if "bf16" in mode:
            continue
        ours = run("benchmarks.train_step", "--impl", "ours", *args, *flags)
        rows.append(
            {
                "mode": mode,
                "ours_gflop": ours.get("gflop_per_iter"),
                "reference_gflop": ref.get("gflop_per_iter"),
            }
        )
    return rows


def gpu_steps() -> dict:
    """256² batch 4 on the GPU: the published loop (fp32) and our modes; achieved TFLOP/s are
    the model's FLOPs (counted without recomputation) per second of iteration."""
    useful = run("benchmarks.train_step", "--impl", "ours", *GPU_CONFIG, "--no-recompute",
                 "--iters", "2", "--flops")  # fmt: skip
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    out = {"device": name, "bf16_peak_tflops": peak, "gflop_per_iter": useful.get("gflop_per_iter")}
    out["reference fp32"] = run("benchmarks.train_step", "--impl", "reference", *GPU_CONFIG)
    for mode, flags in GPU_MODES.items():
        r = run("benchmarks.train_step", "--impl", "ours", *GPU_CONFIG, *flags)
        if "sec_per_iter" in r and out["gflop_per_iter"]:
            r["tflops"] = out["gflop_per_iter"] / 1e3 / r["sec_per_iter"]
            r["of_bf16_peak"] = r["tflops"] / peak if peak else None
        out[mode] = r
    return out


def demo(stamp: str) -> dict:
    """`make demo` from scratch, in a run directory of its own."""
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "axondeepsynth.run",
            "+experiment=demo",
            "logger=csv",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir=logs/bench/demo_{stamp}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return {"error": f"exit {out.returncode}: {out.stderr[-300:]}"}
    return {"wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="adds the 256x4 training row")
    parser.add_argument("--train", nargs="+", default=["128x1", "128x4", "256x1"])
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["train", "gpu", "translate", "memory", "data", "seg", "demo", "mosaic"],
    )
    a = parser.parse_args()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    results: dict = {"machine": machine(), "date": stamp}
    if "train" not in a.skip:
        results["train"] = train_steps(a.train + (["256x4"] if a.full else []))
        results["train_flops"] = train_flops()
    if "gpu" not in a.skip and torch.cuda.is_available():
        results["gpu"] = gpu_steps()
    if "translate" not in a.skip:
        results["translate"] = [
            run("benchmarks.translate", "speed", "--size", "4096", "--variants", *RESNET_VARIANTS),
            run(
                "benchmarks.translate",
                "speed",
                "--size",
                "512",
                "--sampler",
                "diffusive",
                "--variants",
                "8",
                "8:bf16",
                "1:bf16",
            ),
        ]
    if "memory" not in a.skip:
        results["memory"] = run("benchmarks.translate", "memory", "--size", "8192")
    if "data" not in a.skip:
        results["data"] = run("benchmarks.data_and_seg", "data")
    if "seg" not in a.skip:
        results["seg"] = run("benchmarks.data_and_seg", "seg", "--size", "2048")
    if "demo" not in a.skip:
        results["demo"] = demo(stamp)
        if "mosaic" not in a.skip and "wall_s" in results["demo"]:  # segment with its model
            model = f"logs/bench/demo_{stamp}/model"
            results["mosaic"] = run("benchmarks.segment_mosaic", model, "--size", MOSAIC)
    print_summary(results)
    out = ROOT / "logs" / "bench" / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nsaved {out}")


def print_summary(r: dict) -> None:
    print(f"\n== {r['machine']}")
    for row in r.get("train", []):
        if "time_ratio" not in row:
            print(f"train {row['size']}² batch {row['batch']} ({row['mode']}): {row}")
            continue
        print(
            f"train {row['size']}² batch {row['batch']} ({row['mode']}): ours "
            f"{row['ours_s']:.2f} s vs published loop {row['reference_s']:.2f} s -> time "
            f"x{row['time_ratio']:.2f}; peak "
            f"{row['ours_peak_mb']:.0f} vs {row['reference_peak_mb']:.0f} MB -> memory "
            f"x{row['memory_ratio']:.2f} (published loop after / before ours: "
            f"x{row['reference_drift']:.2f})"
        )
        if (row["size"], row["batch"]) in PUBLISHED_CODE_S:
            lo, hi = PUBLISHED_CODE_S[row["size"], row["batch"]]
            print(
                f"    vs the published code's own {lo:.0f}-{hi:.0f} s (issue 5, not this run): "
                f"x{row['ours_s'] / hi:.2f}-{row['ours_s'] / lo:.2f}"
            )
    for row in r.get("train_flops", []):
        if row["ours_gflop"] and row["reference_gflop"]:
            print(
                f"train 128² batch 1 ({row['mode']}): {row['ours_gflop']:.0f} vs "
                f"{row['reference_gflop']:.0f} GFLOP per iteration -> "
                f"x{row['ours_gflop'] / row['reference_gflop']:.2f} (time at equal FLOP/s)"
            )
    if "gpu" in r:
        g = r["gpu"]
        print(f"{g['device']}, 256² batch 4, {g['gflop_per_iter']} GFLOP per iteration:")
        for mode, row in g.items():
            if not isinstance(row, dict):
                continue
            if "sec_per_iter" not in row:
                print(f"  {mode}: {row}")
                continue
            flops = f", {row['tflops']:.0f} TFLOP/s" if "tflops" in row else ""
            share = f" ({row['of_bf16_peak']:.0%} of bf16 peak)" if row.get("of_bf16_peak") else ""
            print(
                f"  {mode}: {1 / row['sec_per_iter']:.2f} it/s{flops}{share}, "
                f"{row['gpu_peak_mb'] / 1024:.1f} GB"
            )
    for t in r.get("translate", []):
        variants = ", ".join(
            f"{k} x{v['speedup']:.2f} ({v['mpix_per_s']:.3f} MPix/s)"
            for k, v in t.items()
            if isinstance(v, dict)
        )
        print(
            f"translate {t['size']}² ({t['sampler']}, {t['tiles']} tiles): one at a time "
            f"{t['one_at_a_time_s']:.1f} s ({t['one_at_a_time_mpix_per_s']:.3f} MPix/s); "
            f"batch[:bf16][:compile] {variants}"
        )
    if "memory" in r:
        m = r["memory"]
        print(
            f"translate {m['size']}²: peak {m['above_image_and_model_mb']:.0f} MB above the "
            f"image ({m['image_mb']:.0f} MB) and model"
        )
    if "data" in r:
        d = r["data"]
        step = next(  # the default mode's 256² step
            (row for row in r.get("train", []) if row["size"] == 256 and row.get("ours_s")), None
        )
        consumed = step["batch"] / step["ours_s"] if step else None  # tile pairs/s of training
        need = f"; the 256² step consumes {consumed:.3f}/s" if step else ""
        ratio = f" -> x{d['tile_pairs_per_s'] / consumed:.0f}" if step else ""
        print(
            f"data: {d['tile_pairs_per_s']:.0f} tile pairs/s{need}{ratio}; "
            f"{d['decodes']} decodes for {d['images']} images"
        )
    if "seg" in r:
        s = r["seg"]
        print(f"segmentation {s['size']}²: batched x{s['speedup']:.2f} vs one tile at a time")
    if "demo" in r:
        d = r["demo"]
        print(f"make demo: {d['wall_s']:.0f} s" if "wall_s" in d else f"make demo: {d['error']}")
    if "mosaic" in r:
        m = r["mosaic"]
        print(
            f"segment {m['size']}² ({m['strategy']}, {m['members']} proxies): "
            f"{m['mpix_per_s']:.3f} MPix/s ({m['model_mpix_per_s']:.3f} at the model's pixel "
            f"size), peak {m['peak_rss_mb'] / 1024:.2f} GB"
            if "wall_s" in m
            else f"segment mosaic: {m['error']}"
        )


if __name__ == "__main__":
    main()
