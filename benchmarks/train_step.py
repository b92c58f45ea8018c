"""Training-iteration speed and peak memory: our SynDiff step vs the published loop.

Run one configuration per process so peak RSS is its own:
    python -m benchmarks.train_step --impl ours --size 128 --batch 1 --iters 3
prints one JSON line: seconds per iteration (median after a warm-up iteration) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from axondeepsynth.config import TranslatorConfig
from axondeepsynth.modules.translator import SynDiff
from benchmarks.reference_loop import reference_iteration


class Timer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self.start)


def model(size: int, recompute: bool, reuse: bool = False) -> SynDiff:
    cfg = TranslatorConfig(recompute=recompute, reuse_generator_pass=reuse)
    cfg.diffusive.image_size = size
    return SynDiff(cfg)


def batches(size: int, batch: int, n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        {
            "x_l": torch.rand(batch, 1, size, size, generator=g),
            "x_u": torch.rand(batch, 1, size, size, generator=g),
        }
        for _ in range(n)
    ]


def time_ours(
    size: int,
    batch: int,
    iters: int,
    precision: str = "32-true",
    recompute: bool = True,
    reuse: bool = False,
) -> list[float]:
    timer = Timer()
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        precision=precision,
        max_epochs=1,
        limit_train_batches=iters,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(
        model(size, recompute, reuse), DataLoader(batches(size, batch, iters), batch_size=None)
    )
    return timer.times


def time_reference(size: int, batch: int, iters: int) -> list[float]:
    m = model(size, recompute=False)  # the published networks store their activations
    c = m.cfg
    opt_g = torch.optim.Adam(m.G.parameters(), lr=c.lr_g, betas=tuple(c.betas))
    opt_d = torch.optim.Adam(m.D.parameters(), lr=c.lr_d, betas=tuple(c.betas))
    gen, times = torch.Generator().manual_seed(0), []
    for b in batches(size, batch, iters):
        start = time.perf_counter()
        reference_iteration(m, b["x_l"] * 2 - 1, b["x_u"] * 2 - 1, gen, opt_g, opt_d)
        m.G_ema.update(m.G)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["ours", "reference"], required=True)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--no-recompute", dest="recompute", action="store_false")
    parser.add_argument("--reuse", action="store_true", help="model.reuse_generator_pass")
    a = parser.parse_args()
    if a.impl == "ours":
        times = time_ours(a.size, a.batch, a.iters, a.precision, a.recompute, a.reuse)
    else:
        times = time_reference(a.size, a.batch, a.iters)
    timed = sorted(times[1:] or times)
    print(
        json.dumps(
            {
                "impl": a.impl,
                "size": a.size,
                "batch": a.batch,
                "precision": a.precision,
                "recompute": a.recompute if a.impl == "ours" else False,
                "reuse": a.reuse,
                "sec_per_iter": timed[len(timed) // 2],
                "all": times,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
