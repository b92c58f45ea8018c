"""Stage `train_segmenter`: train the segmentation proxy on each training set and fold.

Training sets: `L` (real labelled images; used by direct and adaptation), `L2U` (L translated
into U's look, carrying L's labels; used by tutorship) and `U` (U's own labelled images; used by
the oracle, scored on its held-out fold). Folds split each set by subject.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path

import pytorch_lightning as pl

from axondeepsynth.data.datamodules import SegmentationDataModule
from axondeepsynth.data.records import Sample
from axondeepsynth.errors import ConfigError
from axondeepsynth.modules.segmenter import Segmenter
from axondeepsynth.pipeline.artifacts import config_hash, once
from axondeepsynth.pipeline.context import STRATEGY_TRAIN_SET, Run
from axondeepsynth.pipeline.trainer import build_trainer, resume_from

log = logging.getLogger(__name__)


def training_samples(run: Run, train_set: str) -> tuple[list[Sample], str]:
    """The labelled samples of a training set and a string naming where they came from."""
    if train_set in ("L", "U"):
        samples, origin = run.domain(train_set), run.domain_config(train_set).describe()
    else:
        translated = run.artifacts.get("translated", {}).get("l2u")
        if translated is None:
            raise ConfigError(
                "stages",
                "tutorship needs the L->U translation",
                "add translate to stages (or reuse a run via translator.dir)",
            )
        roots = translated.get("roots", [translated["root"]])
        samples, origin = run.dataset(roots, "L2U"), ", ".join(roots)
    labelled = [s for s in samples if s.labels is not None]
    if len(labelled) < len(samples):
        log.warning(
            "%s: %d of %d images have no labels and are left out of segmentation training",
            origin,
            len(samples) - len(labelled),
            len(samples),
        )
    if not labelled:
        key = "data.unlabeled" if train_set == "U" else "data.labeled"
        raise ConfigError(
            key,
            f"no labelled images in {origin}",
            "the oracle needs U's own *_seg-axon/myelin masks: drop it from seg.strategies"
            if train_set == "U"
            else "domain L needs *_seg-axon/myelin masks",
        )
    k = run.cfg.seg.k
    if k > 1 and len(labelled) < k:
        raise ConfigError(
            "seg.k",
            f"{len(labelled)} labelled images in {origin} cannot make {k} folds",
            "lower seg.k (seg.k=1 trains on all of them)",
        )
    return labelled, origin


def run(run: Run) -> dict:
    cfg, seg = run.cfg, run.cfg.seg
    checkpoints = dict(run.artifacts.get("segmenters", {}))
    for train_set in dict.fromkeys(STRATEGY_TRAIN_SET[s] for s in seg.strategies):
        samples, origin = training_samples(run, train_set)
        for fold in run.folds:
            root = run.out / "seg" / train_set / f"fold{fold}"
            key = config_hash(
                origin, asdict(cfg.data), asdict(seg), asdict(cfg.trainer), cfg.seed, fold
            )
            done = once(
                root, key, lambda s=samples, f=fold, r=root: _train(run, s, f, r), distributed=True
            )
            checkpoints[f"{train_set}/fold{fold}"] = done["checkpoint"]
    return {"segmenters": checkpoints}


def _train(run: Run, samples: list[Sample], fold: int, root: Path) -> dict:
    cfg, seg = run.cfg, run.cfg.seg
    pl.seed_everything(cfg.seed + fold, workers=True, verbose=False)
    data = replace(
        cfg.data,
        batch_size=seg.batch_size,
        tiles_per_epoch=seg.tiles_per_epoch,
        tile_size=cfg.seg_tiling()[0],
    )
    dm = SegmentationDataModule(
        data, cfg.seed, samples, fold, seg.k, root / "split.json", seg.augment, seg.net.normalize
    )
    module = Segmenter(seg.net)
    trainer = build_trainer(cfg, root, "val/dice_mean", "max", max_epochs=seg.max_epochs)
    # ckpt_path=last resumes the fold from its newest readable last.ckpt or interrupted.ckpt
    resume = resume_from(root / "checkpoints") if cfg.ckpt_path == "last" else None
    trainer.fit(module, dm, ckpt_path=resume, weights_only=True)
    last = str(root / "checkpoints" / "last.ckpt")
    best = trainer.checkpoint_callback.best_model_path or last
    val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    log.info(
        "segmenter %s fold %d: val/dice_mean %.3f",
        root.parent.name,
        fold,
        val.get("val/dice_mean", float("nan")),
    )
    return {"checkpoint": {"best": best, "last": last}, "val": val}
