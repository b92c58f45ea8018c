"""Stage keys: the hash of the config a stage's output was made from, by one rule.

A key covers every field that changes what the stage learns or writes, and no field tagged
SPEED in the schema (how fast, how verbose, where): changing those reuses a finished stage, so a
sweep can share one translator directory. Fields tagged PREDICT (how trained models are
applied) are in the keys of the stages that apply models, not of those that train them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from axondeepsynth.config import Config
from axondeepsynth.schema import identity

TRAINING = ("speed", "predict")
# seg's settings that only the Lightning proxy reads
LIGHTNING_ONLY = ("net", "augment", "tile_size", "max_epochs", "tiles_per_epoch", "batch_size")


def config_hash(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def translator(cfg: Config, seed: int | None = None) -> str:
    """The translator trained with `seed` (default: the run's)."""
    seed = cfg.seed if seed is None else seed
    return config_hash(identity(cfg.data), identity(cfg.model), identity(cfg.trainer), seed)


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
    path), the source domain and
    how it is decoded and tiled, the sampler and its noise (seed, batch, which draw)."""
    source = cfg.data.labeled if direction == "l2u" else cfg.data.unlabeled
    t = identity(cfg.translator)
    sampling = {k: t[k] for k in ("sampler", "precision", "seed")}
    if draw:  # the first draw keeps the key it had before draws existed
        sampling["draw"] = draw
    d = cfg.data
    decoding = (d.target_pixel_size, d.resize, d.tile_size, d.tile_overlap)
    trained = None if cfg.translator.ckpt_path else translator(cfg, seed)
    return config_hash(
        str(checkpoint), trained, direction, batch_size, sampling, identity(source), decoding
    )


def segmenter(cfg: Config, origin: str, fold: int) -> str:
    """One proxy: its training images, data, training settings (its own epochs: seg's), fold.
    Each backend's key leaves the other's settings out (a Lightning proxy kept its key when
    nnU-Net's came)."""
    trainer = identity(cfg.trainer)
    del trainer["max_epochs"]  # the translator's; the proxy trains for seg.max_epochs
    seg = identity(cfg.seg, TRAINING)
    unused = LIGHTNING_ONLY if cfg.seg.backend == "nnunet" else ("backend", "nnunet")
    for name in unused:
        del seg[name]
    return config_hash(origin, identity(cfg.data), seg, trainer, cfg.seed, fold)


def nnunet_dataset(cfg: Config, origin: str) -> str:
    """A training set as an nnU-Net dataset: its images, how they are decoded, the planner, its
    memory budget and the configuration, and the folds' split."""
    n = cfg.seg.nnunet
    planning = (n.planner, n.gpu_memory_target_gb, n.configuration)
    return config_hash(origin, identity(cfg.data), planning, cfg.seg.k, cfg.seed)


def results(cfg: Config, seeded: bool = True) -> str:
    """What a row of Dice depends on: everything but which folds and strategies ran here, so
    the folds of a sweep's jobs share it; without the seed (`seeded=False`), what runs that
    differ by their seed alone share."""
    seg = identity(cfg.seg)
    del seg["fold"], seg["strategies"]
    parts = (identity(cfg.data), identity(cfg.model), identity(cfg.trainer), seg)
    return config_hash(*parts, cfg.seed) if seeded else config_hash(*parts, "any seed")
