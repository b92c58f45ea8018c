"""Long runs hold memory flat (run by hand: `pytest -m slow tests/test_soak.py -s`).

SOAK_STEPS (default 10000) training steps of a tiny SynDiff; RSS is sampled every 250 batches and
written to SOAK_LOG (default soak.jsonl in the test's temp dir) as it goes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
from test_translator import TILE, phantom_samples, tiny_cfg
from torch.utils.data import DataLoader

from axondeepsynth.data.training_tiles import EpochSampler, RandomTiles, UnpairedTiles
from axondeepsynth.inference import translate_sample
from axondeepsynth.training.translators import SynDiff


def rss_mb() -> float:
    line = next(
        x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS")
    )
    return int(line.split()[1]) / 1024


class RssLog(pl.Callback):
    def __init__(self, path: Path, every: int = 250) -> None:
        self.path, self.every, self.samples = path, every, []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = int(module.batches_seen)
        if step % self.every == 0:
            self.samples.append((step, rss_mb()))
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, "rss_mb": self.samples[-1][1]}) + "\n")


@pytest.mark.slow
def test_training_memory_is_flat(tmp_path: Path) -> None:
    steps = int(os.environ.get("SOAK_STEPS", "10000"))
    log = RssLog(Path(os.environ.get("SOAK_LOG", tmp_path / "soak.jsonl")))
    l_s, u_s = phantom_samples("TEM", 0, n=4), phantom_samples("SEM", 100, n=4)
    data = UnpairedTiles(RandomTiles(l_s, TILE, 400, 0, 0), RandomTiles(u_s, TILE, 400, 0, 1))
    loader = DataLoader(data, batch_size=4, sampler=EpochSampler(len(data)), drop_last=True)
    trainer = pl.Trainer(
        max_steps=2 * steps,
        max_epochs=-1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        callbacks=[log],
        default_root_dir=tmp_path,
    )
    trainer.fit(SynDiff(tiny_cfg()), loader)  # manual optimisation: 2 optimiser steps a batch
    rss = np.array([r for _, r in log.samples])
    warm = rss[len(rss) // 10]
    assert rss[-1] - warm < 50, f"RSS grew from {warm:.0f} to {rss[-1]:.0f} MB"


@pytest.mark.slow
def test_translating_a_thousand_images_holds_memory_flat() -> None:
    module = SynDiff(tiny_cfg()).eval()
    sample = phantom_samples("TEM", 0, n=1, size=128)[0]
    rss = []
    for i in range(1000):
        translate_sample(module, sample, "l2u", TILE, 8, 16, "resnet", i)
        if i % 100 == 0:
            rss.append(rss_mb())
    assert rss[-1] - rss[1] < 30, rss
