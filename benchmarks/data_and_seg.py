"""Data pipeline throughput (tiles/s, decodes per image) and batched segmentation inference.

python -m benchmarks.data_and_seg data
python -m benchmarks.data_and_seg seg --size 2048
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from axondeepsynth.data import images
from axondeepsynth.data.config import DomainConfig, PhantomConfig, TranslatorTilesConfig
from axondeepsynth.data.datamodules import TranslationDataModule
from axondeepsynth.data.domain import load_domain
from axondeepsynth.training.config import SegmenterConfig
from axondeepsynth.training.segmenter import Segmenter


def data(a: argparse.Namespace) -> dict:
    """Tiles/s the translator's DataModule delivers at 256 px, and image decodes per image."""
    decodes = []
    read = images.read_image
    images.read_image = lambda path: decodes.append(path) or read(path)  # count decodes
    with tempfile.TemporaryDirectory() as tmp:
        domains = [
            DomainConfig(
                root=f"{tmp}/{look}",
                phantom=PhantomConfig(look=look, n_images=8, size=1024, seed=seed),
            )
            for look, seed in (("TEM", 0), ("SEM", 9))
        ]
        tiles = TranslatorTilesConfig(tile_size=256, num_workers=a.workers)
        l_s, u_s = (load_domain(d, None, n) for d, n in zip(domains, "LU", strict=True))
        dm = TranslationDataModule(tiles, a.batch, a.tiles, 0, l_s, u_s)
        dm.setup("fit")
        n, start = 0, time.perf_counter()
        for epoch in range(2):
            loader = dm.train_dataloader()
            loader.sampler.set_epoch(epoch)
            for batch in loader:
                n += batch["x_l"].shape[0]
        elapsed = time.perf_counter() - start
    images.read_image = read
    return {
        "tile": 256,
        "batch": a.batch,
        "workers": a.workers,
        "tile_pairs_per_s": n / elapsed,
        "images": 16,
        "decodes": len(decodes),
    }


def seg(a: argparse.Namespace) -> dict:
    """Sliding-window prediction of a default-size U-Net: batched vs one tile at a time."""
    model = Segmenter(SegmenterConfig()).eval()
    img = np.random.default_rng(0).random((a.size, a.size), dtype=np.float32)
    out = {"size": a.size, "tile": 256}
    for batch in (1, a.batch):
        start = time.perf_counter()
        model.predict_proba(img, 256, 32, batch)
        out[f"batch{batch}_mpix_per_s"] = a.size**2 / 1e6 / (time.perf_counter() - start)
    out["speedup"] = out[f"batch{a.batch}_mpix_per_s"] / out["batch1_mpix_per_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["data", "seg"])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tiles", type=int, default=512)
    parser.add_argument("--workers", type=int, default=0)
    a = parser.parse_args()
    torch.manual_seed(0)
    print(json.dumps(data(a) if a.what == "data" else seg(a)))


if __name__ == "__main__":
    main()
