"""Training-iteration speed and peak memory: our SynDiff step vs the published loop.

Run one configuration per process so peak RSS is its own:
    python -m benchmarks.train_step --impl ours --size 128 --batch 1 --iters 5
prints one JSON line: seconds per iteration (median of the iterations after WARMUP; the first
holds the lazy R1 penalty, and both loops' first iterations run slow while the process's memory
settles; both loops count batches alike, so every timed iteration is one of the nine in ten
without R1) and peak RSS. With `--flops`, iteration 1 is counted by `torch.utils.flop_counter`.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from axondeepsynth.training.config import TranslatorConfig, TranslatorTrainConfig
from axondeepsynth.training.translators import SynDiff
from tests.reference_loop import reference_iteration

WARMUP = 2  # iterations not timed
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


class Meter:
    """Seconds of every iteration, and the FLOPs of iteration 1 when `count_flops`."""

    def __init__(self, count_flops: bool = False) -> None:
        self.count_flops, self.times, self.flops = count_flops, [], None

    def start(self) -> None:
        if self.count_flops and len(self.times) == 1:
            self.counter = FlopCounterMode(display=False)
            self.counter.__enter__()
        _sync()
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        _sync()
        self.times.append(time.perf_counter() - self.t0)
        if self.count_flops and len(self.times) == 2:
            self.counter.__exit__(None, None, None)
            self.flops = self.counter.get_total_flops()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Timer(pl.Callback):
    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def on_train_batch_start(self, *args) -> None:
        self.meter.start()

    def on_train_batch_end(self, *args) -> None:
        self.meter.stop()


def model(size: int, recompute: bool, reuse: bool = False, **options: bool) -> SynDiff:
    train = TranslatorTrainConfig(recompute=recompute, reuse_generator_pass=reuse, **options)
    cfg = TranslatorConfig(train=train)
    cfg.net.diffusive.image_size = size
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
    meter: Meter,
    size: int,
    batch: int,
    iters: int,
    precision: str = "32-true",
    recompute: bool = True,
    reuse: bool = False,
    **options: bool,
) -> None:
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
        callbacks=[Timer(meter)],
    )
    trainer.fit(
        model(size, recompute, reuse, **options),
        DataLoader(batches(size, batch, iters), batch_size=None),
    )


def time_reference(meter: Meter, size: int, batch: int, iters: int) -> None:
    m = model(size, recompute=False).to(DEVICE)  # the published networks store activations
    c = m.cfg
    opt_g = torch.optim.Adam(m.G.parameters(), lr=c.train.lr_g, betas=tuple(c.train.betas))
    opt_d = torch.optim.Adam(m.D.parameters(), lr=c.train.lr_d, betas=tuple(c.train.betas))
    gen = torch.Generator(DEVICE).manual_seed(0)
    for b in batches(size, batch, iters):
        x_l, x_u = (b[k].to(DEVICE) * 2 - 1 for k in ("x_l", "x_u"))
        meter.start()
        reference_iteration(m, x_l, x_u, gen, opt_g, opt_d)
        m.G_ema.update(m.G)
        m.batches_seen += 1  # as our step counts, so lazy R1 falls on the same (warm-up) iteration
        meter.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["ours", "reference"], required=True)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--no-recompute", dest="recompute", action="store_false")
    parser.add_argument(
        "--reuse", action="store_true", help="translator.train.reuse_generator_pass"
    )
    parser.add_argument("--flops", action="store_true", help="count iteration 1's FLOPs")
    parser.add_argument(
        "--channels-last", action="store_true", help="translator.train.channels_last"
    )
    parser.add_argument("--compile", action="store_true", help="translator.train.compile")
    a = parser.parse_args()
    meter = Meter(a.flops)
    if a.impl == "ours":
        options = {"channels_last": a.channels_last, "compile": a.compile}
        time_ours(meter, a.size, a.batch, a.iters, a.precision, a.recompute, a.reuse, **options)
    else:
        time_reference(meter, a.size, a.batch, a.iters)
    times = meter.times
    print(
        json.dumps(
            {
                "impl": a.impl,
                "size": a.size,
                "batch": a.batch,
                "precision": a.precision,
                "recompute": a.recompute if a.impl == "ours" else False,
                "reuse": a.reuse,
                "channels_last": a.channels_last,
                "compile": a.compile,
                "sec_per_iter": statistics.median(times[WARMUP:] or times),
                "all": times,
                "gflop_per_iter": meter.flops / 1e9 if meter.flops else None,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20
                if torch.cuda.is_available()
                else None,
            }
        )
    )


if __name__ == "__main__":
    main()
