"""Stage `train_translator`: fit SynDiff (or CycleGAN) on unpaired L/U tiles.

Scores the untrained model first, so `translator/translator.json` shows what training bought.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from axondeepsynth.config import Config
from axondeepsynth.data.datamodules import TranslationDataModule
from axondeepsynth.data.images import write_text
from axondeepsynth.modules.translator import SynDiff
from axondeepsynth.pipeline.context import Run
from axondeepsynth.pipeline.trainer import build_trainer

log = logging.getLogger(__name__)


def run(run: Run) -> dict:
    cfg, root = run.cfg, run.out / "translator"
    dm = TranslationDataModule(cfg.data, cfg.seed, run.domain("L"), run.domain("U"))
    module = SynDiff(cfg.model, paired_val=cfg.data.paired, seed=cfg.seed)
    trainer = build_trainer(cfg, root, cfg.model.monitor, cfg.model.monitor_mode)
    untrained = {}
    if cfg.ckpt_path is None:
        untrained = _validate(cfg, root, module, dm)
    trainer.fit(module, dm, ckpt_path=cfg.ckpt_path)
    ckpt = trainer.checkpoint_callback
    record = {
        "best": ckpt.best_model_path,
        "last": str(root / "checkpoints" / "last.ckpt"),  # spawned ranks do not report it
        "monitor": cfg.model.monitor,
        "best_score": _float(ckpt.best_model_score),
        "final": {
            k: _float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")
        },
        "untrained": untrained,
    }
    if trainer.is_global_zero:
        write_text(root / "translator.json", json.dumps(record, indent=2))
    log.info(
        "translator: %s = %.4f (untrained %.4f); best checkpoint %s",
        cfg.model.monitor,
        record["final"].get(cfg.model.monitor, float("nan")),
        untrained.get(cfg.model.monitor, float("nan")),
        record["best"],
    )
    return {
        "translator_ckpt": record["best"] or record["last"],
        "objective": record["final"].get(cfg.model.monitor),
    }


def _validate(cfg: Config, root: Path, module: SynDiff, dm: TranslationDataModule) -> dict:
    """Validation metrics of the freshly initialised model (single process, no logging)."""
    trainer = build_trainer(
        cfg, root / "untrained", logger=False, devices=1, strategy="auto", enable_progress_bar=False
    )
    (metrics,) = trainer.validate(module, dm, verbose=False)
    return {k: float(v) for k, v in metrics.items()}


def _float(value) -> float | None:
    return None if value is None else float(value)
