"""`segment` on one large mosaic: wall time, megapixels per second and peak memory.

    python -m benchmarks.segment_mosaic MODEL_DIR --size 20000 [--pixel-size 0.07] [--threads 2]

The mosaic is the rat7 SEM image of `../shared/data` (0.07 µm/px) mirrored into a SIZE² 8-bit
PNG, or an SEM-like phantom where the shared data is absent. `python -m axondeepsynth.segment`
runs on it in a process of its own, whose peak RSS is the figure (the mosaic is made here, in
the parent). Prints one JSON line; throughput is given in the stored image's megapixels and in
the model's (after resampling to its pixel size), which is what the work follows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from axondeepsynth.data import images
from axondeepsynth.data.phantoms import render_nerve

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AXONDEEPSYNTH_SHARED_DATA", ROOT.parent / "shared" / "data"))
RAT7 = SHARED / "sem/sub-rat7/micr/sub-rat7_sample-Maxo03img60_SEM.png"


def source() -> tuple[np.ndarray, str]:
    """The picture the mosaic repeats: real SEM where present, else a phantom."""
    if RAT7.is_file():
        return images.as_uint8(images.read_image(RAT7)), "rat7"
    return images.as_uint8(render_nerve(1024, 0, looks=("SEM",)).images["SEM"]), "phantom"


def mosaic(tile: np.ndarray, size: int) -> np.ndarray:
    """`tile` and its mirror images repeated to size² px: no seams a model could see."""
    quad = np.block([[tile, tile[:, ::-1]], [tile[::-1], tile[::-1, ::-1]]])
    reps = -(-size // quad.shape[0]), -(-size // quad.shape[1])
    return np.tile(quad, reps)[:size, :size]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path, help="a run's model/ folder")
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--pixel-size", type=float, default=0.07, help="µm per mosaic pixel")
    parser.add_argument("--threads", type=int, default=2)
    a = parser.parse_args()
    tile, picture = source()
    meta = json.loads((a.model / "model.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mosaic.png"
        images.write_png(path, mosaic(tile, a.size))
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
        cmd = [sys.executable, "-m", "axondeepsynth.segment", str(a.model.resolve()), str(path),
               "--out", f"{tmp}/out", "--pixel-size", str(a.pixel_size)]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        written = sorted(p.name for p in Path(f"{tmp}/out").iterdir())
    native = a.size**2 / 1e6
    working = native * (a.pixel_size / meta["pixel_size_um"]) ** 2
    result = {
        "size": a.size,
        "picture": picture,
        "pixel_size_um": a.pixel_size,
        "model": str(a.model),
        "strategy": meta["strategy"],
        "members": len(meta["members"]),
        "translator": bool(meta["translator"]),
        "model_pixel_size_um": meta["pixel_size_um"],
        "threads": a.threads,
        "wall_s": wall,
        "mpix_per_s": native / wall,
        "model_mpix_per_s": working / wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "written": written,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
