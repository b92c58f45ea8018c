"""Stages of a run, each reading what earlier stages left in the run directory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from axondeepsynth.config import Config
from axondeepsynth.pipeline import evaluate, prepare, train_segmenter, train_translator, translate
from axondeepsynth.pipeline.context import Run

log = logging.getLogger(__name__)

STAGE_FUNCTIONS: dict[str, Callable[[Run], dict]] = {
    "prepare": prepare.run,
    "train_translator": train_translator.run,
    "translate": translate.run,
    "train_segmenter": train_segmenter.run,
    "evaluate": evaluate.run,
}


def run_stages(cfg: Config) -> float | None:
    """Run `cfg.stages` in order in the run directory; return the last `objective` reported."""
    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run = Run(cfg, Path(cfg.paths.output_dir))
    run.out.mkdir(parents=True, exist_ok=True)
    for stage in cfg.stages:
        log.info("stage %s -> %s", stage, run.out)
        run.artifacts |= STAGE_FUNCTIONS[stage](run)
    return run.artifacts.get("objective")
