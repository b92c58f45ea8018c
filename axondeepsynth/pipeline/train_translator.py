"""Stage `train_translator`: fit SynDiff (or CycleGAN) on unpaired L/U tiles.

Trained once per translator directory (`translator.dir`, shared across a sweep's jobs). The
untrained model is scored first, so the record shows what training bought.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from axondeepsynth.config import Config
from axondeepsynth.data.datamodules import TranslationDataModule
from axondeepsynth.modules.translator import SynDiff
from axondeepsynth.pipeline.artifacts import config_hash, once
from axondeepsynth.pipeline.context import Run
from axondeepsynth.pipeline.trainer import build_trainer, resume_from

log = logging.getLogger(__name__)


def run(run: Run) -> dict:
    cfg = run.cfg
    if cfg.translator.ckpt_path:
        log.info("using the given translator %s", cfg.translator.ckpt_path)
        path = cfg.translator.ckpt_path
        return {"translator_best": path, "translator_last": path}
    key = config_hash(asdict(cfg.data), cfg.model.identity(), asdict(cfg.trainer), cfg.seed)
    return once(run.translator_dir, key, lambda: _train(run, run.translator_dir), distributed=True)


def _train(run: Run, root: Path) -> dict:
    cfg = run.cfg
    dm = TranslationDataModule(cfg.data, cfg.seed, run.domain("L"), run.domain("U"))
    module = SynDiff(cfg.model, paired_val=cfg.data.paired, seed=cfg.seed)
    resume = resume_from(root / "checkpoints") if cfg.ckpt_path == "last" else cfg.ckpt_path
    untrained = _validate(cfg, root, module, dm) if resume is None else {}
    trainer = build_trainer(cfg, root, cfg.model.monitor, cfg.model.monitor_mode)
    trainer.fit(module, dm, ckpt_path=resume, weights_only=True)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    best = trainer.checkpoint_callback.best_model_path
    last = root / "checkpoints" / "last.ckpt"  # spawned ranks do not report it back
    monitor = cfg.model.monitor
    log.info(
        "translator: %s = %.4f (untrained %.4f); checkpoint %s",
        monitor,
        final.get(monitor, float("nan")),
        untrained.get(monitor, float("nan")),
        best or last,
    )
    return {
        "translator_best": best or str(last),  # by model.monitor
        "translator_last": str(last),  # the final EMA weights
        "translator_metrics": final,
        "translator_untrained": untrained,
        "objective": final.get(monitor),
    }


def _validate(cfg: Config, root: Path, module: SynDiff, dm: TranslationDataModule) -> dict:
    """Validation metrics of the freshly initialised model (single process, no logging)."""
    trainer = build_trainer(
        cfg, root / "untrained", logger=False, devices=1, strategy="auto", enable_progress_bar=False
    )
    (metrics,) = trainer.validate(module, dm, verbose=False)
    return {k: float(v) for k, v in metrics.items()}
