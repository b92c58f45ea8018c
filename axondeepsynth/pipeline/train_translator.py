"""Stage `train_translator`: fit the configured translator (`model.name`) on unpaired L/U tiles.

Trained once per translator directory (`translator.dir`, shared across a sweep's jobs). The
untrained model is scored first, so the record shows what training bought.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl

from axondeepsynth.config import Config
from axondeepsynth.data.datamodules import TranslationDataModule
from axondeepsynth.pipeline import keys
from axondeepsynth.pipeline.context import Run, TranslatorCheckpoints
from axondeepsynth.pipeline.stage_dir import once
from axondeepsynth.pipeline.trainer import build_trainer, resume_from
from axondeepsynth.training import translators

log = logging.getLogger(__name__)


def run(run: Run) -> None:
    cfg = run.cfg
    if cfg.translator.ckpt_path:
        log.info("using the given translator %s", cfg.translator.ckpt_path)
        path = cfg.translator.ckpt_path
        run.outputs.translator = TranslatorCheckpoints(last=path, best=path)
        return
    run.outputs.translator = once(
        run.translator_dir,
        keys.translator(cfg),
        lambda: _train(run, run.translator_dir),
        TranslatorCheckpoints,
    )
    run.outputs.objective = run.outputs.translator.metrics.get(cfg.model.monitor)


def _train(run: Run, root: Path) -> TranslatorCheckpoints:
    cfg = run.cfg
    dm = TranslationDataModule(cfg.data, cfg.seed, run.domain("L"), run.domain("U"))
    module = translators.build(cfg.model, paired_val=cfg.data.paired, seed=cfg.seed)
    resume = resume_from(root / "checkpoints") if cfg.ckpt_path == "last" else cfg.ckpt_path
    untrained = _validate(cfg, root, module, dm) if resume is None else {}
    trainer = build_trainer(cfg, root, cfg.model.monitor, cfg.model.monitor_mode)
    trainer.fit(module, dm, ckpt_path=resume, weights_only=True)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    last = str(root / "checkpoints" / "last.ckpt")
    best = trainer.checkpoint_callback.best_model_path or last
    monitor = cfg.model.monitor
    log.info(
        "translator: %s = %.4f (untrained %.4f); checkpoint %s",
        monitor,
        final.get(monitor, float("nan")),
        untrained.get(monitor, float("nan")),
        best,
    )
    return TranslatorCheckpoints(last=last, best=best, metrics=final, untrained=untrained)


def _validate(cfg: Config, root: Path, module: pl.LightningModule, dm) -> dict[str, float]:
    """Validation metrics of the freshly initialised model (single process, no logging)."""
    trainer = build_trainer(
        cfg, root / "untrained", logger=False, devices=1, strategy="auto", enable_progress_bar=False
    )
    (metrics,) = trainer.validate(module, dm, verbose=False)
    return {k: float(v) for k, v in metrics.items()}
