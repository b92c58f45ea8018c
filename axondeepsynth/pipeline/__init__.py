"""Stages of a run, each reading the previous stage's artifacts from the run directory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from axondeepsynth.config import Config
from axondeepsynth.pipeline import prepare

log = logging.getLogger(__name__)

STAGE_FUNCTIONS: dict[str, Callable[[Config, Path], dict]] = {
    "prepare": prepare.run,
}


def run_stages(cfg: Config) -> float | None:
    """Run `cfg.stages` in order in the run directory; return the last stage's `objective`."""
    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {}
    for stage in cfg.stages:
        if stage not in STAGE_FUNCTIONS:
            raise NotImplementedError(f"stage '{stage}' is not available yet")
        log.info("stage %s -> %s", stage, out)
        result = STAGE_FUNCTIONS[stage](cfg, out)
    return result.get("objective")
