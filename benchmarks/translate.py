"""Whole-image translation: our batched path vs the same tiles one at a time, and peak memory.

    python -m benchmarks.translate speed --size 4096 --sampler resnet --variants 8 8:bf16
    python -m benchmarks.translate memory --size 8192
Each prints one JSON line. The baseline is what a straightforward loop does: one tile per forward
pass, fp32, under no_grad; ours runs `translate_sample` (inference mode) in each variant
`BATCH[:bf16][:compile]` (compile: inductor with frozen weights, compile time included).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from axondeepsynth.data import stitch
from axondeepsynth.data.records import Sample
from axondeepsynth.pipeline.translate import compile_generators, translate_sample
from axondeepsynth.training.config import TranslatorConfig
from axondeepsynth.training.translators import SynDiff

TILE, OVERLAP = 256, 32


def image(size: int) -> np.ndarray:
    """A smooth random image (content does not change the cost)."""
    rng = np.random.default_rng(0)
    small = rng.random((size // 64 + 1, size // 64 + 1), dtype=np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def model() -> SynDiff:
    return SynDiff(TranslatorConfig()).eval()


def one_at_a_time(m: SynDiff, img: np.ndarray, sampler: str) -> np.ndarray:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return stitch.sliding_window(
            img, lambda x: m.translate(x, "l2u", sampler, gen), TILE, OVERLAP, batch_size=1
        )


def ours(m: SynDiff, img: np.ndarray, sampler: str, batch: int, bf16: bool) -> np.ndarray:
    sample = Sample("bench", "sub-0", img, 0.1, None, Path("bench.png"))
    return translate_sample(m, sample, "l2u", TILE, OVERLAP, batch, sampler, 0, bf16=bf16).image


def variant(m: SynDiff, spec: str) -> tuple[SynDiff, int, bool]:
    """`8`, `8:bf16`, `1:bf16:compile` -> (model, batch, bf16)."""
    batch, *flags = spec.split(":")
    if "compile" in flags:
        m = compile_generators(copy.deepcopy(m))
    return m, int(batch), "bf16" in flags


def speed(a: argparse.Namespace) -> dict:
    img, m = image(a.size), model()
    n_tiles = stitch.count(img.shape, TILE, OVERLAP)
    start = time.perf_counter()
    base = one_at_a_time(m, img, a.sampler)
    t_base = time.perf_counter() - start
    out = {"size": a.size, "sampler": a.sampler, "tiles": n_tiles, "one_at_a_time_s": t_base}
    out["one_at_a_time_mpix_per_s"] = a.size**2 / 1e6 / t_base
    for spec in a.variants:
        model_, batch, bf16 = variant(m, spec)
        start = time.perf_counter()
        y = ours(model_, img, a.sampler, batch, bf16)
        t = time.perf_counter() - start
        out[spec] = {
            "s": t,
            "speedup": t_base / t,
            "mpix_per_s": a.size**2 / 1e6 / t,
            "max_abs_diff": float(np.abs(y - base[0]).max()),
            "mean_abs_diff": float(np.abs(y - base[0]).mean()),
        }
    return out


def memory(a: argparse.Namespace) -> dict:
    m = model()
    img = image(a.size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ours(m, img, "resnet", a.batch, bf16=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "size": a.size,
        "image_mb": img.nbytes / 2**20,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "above_image_and_model_mb": peak - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["speed", "memory"])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--sampler", default="resnet")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--variants", nargs="+", default=["8", "8:bf16", "8:compile", "8:bf16:compile"]
    )
    a = parser.parse_args()
    torch.manual_seed(0)
    print(json.dumps(speed(a) if a.what == "speed" else memory(a)))


if __name__ == "__main__":
    main()
