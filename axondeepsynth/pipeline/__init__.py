"""Stages of a run, in one process: each reads the typed outputs of earlier stages and adds its
own (`context.Outputs`). Training stages start their own ranks when the trainer has several
devices (spawned for that stage's fit only); everything else runs once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from axondeepsynth.config import Config
from axondeepsynth.pipeline import (
    evaluate,
    export,
    prepare,
    self_train,
    train_segmenter,
    train_translator,
    translate,
)
from axondeepsynth.pipeline.context import Run
from axondeepsynth.pipeline.trainer import logger_files_in
from axondeepsynth.run_dir import check_output_dir
from axondeepsynth.strategies import shown_translations
from axondeepsynth.training import translators

log = logging.getLogger(__name__)

STAGE_FUNCTIONS: dict[str, Callable[[Run], None]] = {
    "prepare": prepare.run,
    "train_translator": train_translator.run,
    "translate": translate.run,
    "train_segmenter": train_segmenter.run,
    "evaluate": evaluate.run,
    "self_train": self_train.run,
    "export": export.run,
}


def check(cfg: Config) -> None:
    """Refuse, before any work, what the configured parts cannot do (the schema's own checks
    are `validation.validate`'s)."""
    if "train_translator" in cfg.stages:
        drawn = "u2l" in shown_translations(cfg.seg.strategies)
        translators.get(cfg.model.name).check(
            cfg.model,
            tile=cfg.data.tile_size,
            batch=cfg.data.batch_size,
            sampler=cfg.translator.sampler,
            samples=cfg.translator.samples if drawn else 1,
        )


def run_stages(cfg: Config) -> float | None:
    """Run `cfg.stages` in order in the run directory; return the last `objective` reported."""
    import pytorch_lightning as pl

    check(cfg)

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run = Run(cfg, Path(cfg.paths.output_dir))
    check_output_dir(run.out, cfg.paths.min_free_gb)
    t = cfg.translator
    if t.samples > 1 and "u2l" not in shown_translations(cfg.seg.strategies):
        log.warning(
            "translator.samples=%d: no chosen strategy segments translations, so each "
            "image is translated once",
            t.samples,
        )
    if t.ckpt_path:  # refused before any stage claims a directory for it
        from axondeepsynth.inference import load_translator

        load_translator(t.ckpt_path, sampler=t.sampler, samples=run.draws("u2l"))
    with logger_files_in(run.out):
        for stage in cfg.stages:
            log.info("stage %s -> %s", stage, run.out)
            STAGE_FUNCTIONS[stage](run)
    return run.outputs.objective
