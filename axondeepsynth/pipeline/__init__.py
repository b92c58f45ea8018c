"""Stages of a run, in one process: each reads the typed outputs of earlier stages and adds its
own (`context.Outputs`). Training stages start their own ranks when the trainer has several
devices (spawned for that stage's fit only); everything else runs once.

A stage is a module here with a `run(run: Run)` function, named in `config.STAGES` at its place
in the order: adding one is that module and that entry."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from axondeepsynth.config import Config
from axondeepsynth.pipeline.context import Run
from axondeepsynth.pipeline.trainer import logger_files_in
from axondeepsynth.run_dir import check_output_dir
from axondeepsynth.strategies import shown_translations
from axondeepsynth.training import translators

log = logging.getLogger(__name__)


def stage_function(name: str) -> Callable[[Run], None]:
    """The function of the stage `name`: `run` of its module `pipeline/<name>.py`."""
    return importlib.import_module(f"{__name__}.{name}").run


def emulated_bf16(cfg: Config) -> dict[str, str]:
    """The keys asking for bf16 on a CPU without native bf16 (avx512_bf16 or AMX), where
    oneDNN emulates it, each with its fp32 value; none on a GPU."""
    import torch

    if cfg.trainer.accelerator not in ("cpu", "auto") or torch.cuda.is_available():
        return {}
    if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
        return {}
    asked = {  # key: (its value, its fp32 value)
        "trainer.precision": (cfg.trainer.precision, "32-true"),
        "segmenter.train.precision": (cfg.segmenter.train.precision, "32-true"),
        "segmenter.predict.precision": (cfg.segmenter.predict.precision, "32"),
        "translator.sample.precision": (cfg.translator.sample.precision, "32"),
    }
    return {k: fp32 for k, (v, fp32) in asked.items() if v and v.startswith("bf16")}


def check(cfg: Config) -> None:
    """Refuse, before any work, what the configured parts cannot do (the schema's own checks
    are `validation.validate`'s)."""
    if "train_translator" in cfg.stages:
        t = cfg.translator
        drawn = "u2l" in shown_translations(cfg.segmenter.strategies)
        translators.get(t.name).check(
            t.module(),
            tile=t.data.tile_size,
            batch=t.train.batch_size,
            sampler=t.sample.sampler,
            samples=t.sample.samples if drawn else 1,
        )


def run_stages(cfg: Config) -> float | None:
    """Run `cfg.stages` in order in the run directory; return the last `objective` reported."""
    import pytorch_lightning as pl

    check(cfg)

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run = Run(cfg, Path(cfg.paths.output_dir))
    check_output_dir(run.out, cfg.paths.min_free_gb)
    for key, fp32 in emulated_bf16(cfg).items():
        log.warning(
            "%s asks for bf16, which this CPU (no avx512_bf16 or AMX) emulates: slower than "
            "fp32; pass %s=%s",
            key,
            key,
            fp32,
        )
    t = cfg.translator.sample
    if t.samples > 1 and "u2l" not in shown_translations(cfg.segmenter.strategies):
        log.warning(
            "translator.sample.samples=%d: no chosen strategy segments translations, so each "
            "image is translated once",
            t.samples,
        )
    if t.ckpt_path:  # refused before any stage claims a directory for it
        from axondeepsynth.inference import load_translator

        load_translator(t.ckpt_path, sampler=t.sampler, samples=run.draws("u2l"))
    if cfg.translator.init_from and "train_translator" in cfg.stages:  # it fits, or no stage runs
        from axondeepsynth.training import translators

        translators.warm_start(translators.build(cfg.translator.module()), cfg.translator.init_from)
    with logger_files_in(run.out):
        for stage in cfg.stages:
            log.info("stage %s -> %s", stage, run.out)
            start = time.perf_counter()
            stage_function(stage)(run)
            log.info("stage %s took %.1f s", stage, time.perf_counter() - start)
    return run.outputs.objective
