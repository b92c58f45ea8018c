"""Stage keys: the hash of the config parts a stage's output was made from, by one rule.

Each key names the subtrees its stage reads and nothing else (the translator: `data`,
`translator.{name,net,train,data}`, `trainer`; a proxy: `data`, `segmenter.{net,train,data}` or
`segmenter.nnunet`, `trainer`), without their SPEED fields (how fast, how verbose, where):
changing those reuses a finished stage, so a sweep can share one translator directory.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from axondeepsynth.config import Config
from axondeepsynth.schema import identity


def config_hash(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def translator(cfg: Config, seed: int | None = None) -> str:
    """The translator trained with `seed` (default: the run's)."""
    t = cfg.translator
    seed = cfg.seed if seed is None else seed
    parts = (identity(cfg.data), identity(t.module()), identity(t.data), identity(cfg.trainer))
    if warm := _warm_start(cfg):  # keys made before warm starts existed stay
        parts += (warm,)
    return config_hash(*parts, seed)


def _warm_start(cfg: Config) -> dict[str, str]:
    """What the translator starts from, by the file's content wherever it lies."""
    path = cfg.translator.init_from
    if not path:
        return {}
    stat = Path(path).stat()
    return {"init_from": _file_digest(path, stat.st_size, stat.st_mtime_ns)}


@functools.cache
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """A file's content hash, read once per version of it (a published-size checkpoint is
    hundreds of MB, and the keys of a run ask for it several times)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()[:12]


def translation(
    cfg: Config,
    checkpoint: str,
    direction: str,
    batch_size: int,
    draw: int = 0,
    seed: int | None = None,
) -> str:
    """One draw of a direction's translations: the checkpoint that makes them (and, when the
    run trained it, the key of the translator trained with `seed`: a retrained one keeps its
    path), the source domain and how it is decoded and tiled, the sampler and its noise (seed,
    batch, which draw)."""
    s = cfg.translator.sample
    source = cfg.data.labeled if direction == "l2u" else cfg.data.unlabeled
    sampling = {"sampler": s.sampler, "precision": s.precision, "seed": s.seed}
    if draw:  # the first draw keeps the key it had before draws existed
        sampling["draw"] = draw
    d = cfg.data
    decoding = (d.target_pixel_size, d.resize, cfg.translator.data.tile_size, s.tile_overlap)
    trained = None if s.ckpt_path else translator(cfg, seed)
    return config_hash(
        str(checkpoint), trained, direction, batch_size, sampling, identity(source), decoding
    )


def segmenter(cfg: Config, origin: str, fold: int) -> str:
    """One proxy: its training images (`origin`), the datasets' scale, what its backend
    trains it with, the folds' split, the trainer, the seed and its fold."""
    s = cfg.segmenter
    if s.backend == "nnunet":
        trained = {"backend": "nnunet", "nnunet": identity(s.nnunet)}
    else:
        trained = {"net": identity(s.net), "train": identity(s.train), "data": identity(s.data)}
    return config_hash(
        origin, identity(cfg.data), trained, s.k, identity(cfg.trainer), cfg.seed, fold
    )


def nnunet_dataset(cfg: Config, origin: str) -> str:
    """A training set as an nnU-Net dataset: its images, how they are decoded, the planner, its
    memory budget and the configuration, and the folds' split."""
    n = cfg.segmenter.nnunet
    planning = (n.planner, n.gpu_memory_target_gb, n.configuration)
    return config_hash(origin, identity(cfg.data), planning, cfg.segmenter.k, cfg.seed)


def results(cfg: Config, seeded: bool = True) -> str:
    """What a row of Dice depends on: the datasets, the translator, the segmenter and how it is
    applied, self-training's teacher, the trainer, not which folds and strategies ran here, so
    the folds of a sweep's jobs share it; without the seed (`seeded=False`), what runs that
    differ by their seed alone share."""
    s = cfg.segmenter
    seg = {name: identity(getattr(s, name)) for name in ("backend", "k", "net", "train", "data")}
    seg |= {"nnunet": identity(s.nnunet), "predict": identity(s.predict)}
    translator_ = identity(cfg.translator) | _warm_start(cfg)
    parts = (identity(cfg.data), translator_, seg, identity(cfg.self_train))
    parts += (identity(cfg.trainer),)
    return config_hash(*parts, cfg.seed) if seeded else config_hash(*parts, "any seed")
