"""Stage `train_translator`: fit the configured translator (`translator.name`) on unpaired L/U
tiles.

Trained once per translator directory (`translator.sample.dir`, shared across a sweep's jobs). The
untrained model (or the one `translator.init_from` warm-starts) is scored first, so the record
shows what training bought. With `translator.restarts=N`, a translator whose L->U translations
fail the label-separation check is set aside and another trained with the next seed, up to N
times.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl

from axondeepsynth import translator_check
from axondeepsynth.config import Config
from axondeepsynth.data.datamodules import TranslationDataModule
from axondeepsynth.pipeline import keys, translate
from axondeepsynth.pipeline.context import Run, TranslatorCheckpoints
from axondeepsynth.pipeline.stage_dir import once
from axondeepsynth.pipeline.trainer import build_trainer, resume_from
from axondeepsynth.training import translators

log = logging.getLogger(__name__)


def run(run: Run) -> None:
    cfg = run.cfg
    if cfg.translator.sample.ckpt_path:
        path = cfg.translator.sample.ckpt_path
        log.info("using the given translator %s", path)
        run.outputs.translator = TranslatorCheckpoints(last=path, best=path)
        return
    for restart in range(cfg.translator.restarts + 1):
        seed = cfg.seed + restart
        root = run.default_translator_dir
        if restart:
            root = root.with_name(f"{root.name}-seed{seed}")
        run.outputs.translator = once(
            root, keys.translator(cfg, seed), lambda r=root, s=seed: _train(run, r, s),
            TranslatorCheckpoints,
        )  # fmt: skip
        # a done.json written before restarts existed records neither
        run.outputs.translator.seed, run.outputs.translator.root = seed, str(root)
        if restart == cfg.translator.restarts:
            break
        translate.translate_direction(run, "l2u")
        separation = translate.label_separation(run)
        if separation is None or separation["mean"] >= translator_check.SEPARATION_MIN:
            break
        log.warning(
            "the translator of seed %d fails its check (label separation %.2f < %s): its L->U "
            "translations do not show L's content; training another with seed %d",
            seed, separation["mean"], translator_check.SEPARATION_MIN, seed + 1,
        )  # fmt: skip
        run.outputs.set_aside.append(
            {"seed": seed, "dir": str(root), "label_separation": separation["mean"]}
        )
        del run.outputs.translations["l2u"]
    run.outputs.objective = run.outputs.translator.metrics.get(cfg.translator.train.monitor)


def _train(run: Run, root: Path, seed: int) -> TranslatorCheckpoints:
    cfg = run.cfg
    if seed != cfg.seed:  # a restart: a new initialisation and a new draw of tiles
        pl.seed_everything(seed, workers=True, verbose=False)
    t = cfg.translator
    dm = TranslationDataModule(
        t.data, t.train.batch_size, t.train.tiles_per_epoch, seed, run.domain("L"), run.domain("U")
    )
    module = translators.build(t.module(), paired_val=cfg.data.paired, seed=seed)
    resume = resume_from(root / "checkpoints") if cfg.resume == "last" else cfg.resume
    if t.init_from and resume is None:
        taken = translators.warm_start(module, t.init_from)
        log.info("translator: %s start from %s", ", ".join(taken), t.init_from)
    untrained = _validate(cfg, root, module, dm) if resume is None else {}
    monitor = t.train.monitor
    trainer = build_trainer(cfg, root, monitor, t.train.monitor_mode, max_epochs=t.train.max_epochs)
    trainer.fit(module, dm, ckpt_path=resume, weights_only=True)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    last = str(root / "checkpoints" / "last.ckpt")
    best = trainer.checkpoint_callback.best_model_path or last
    log.info(
        "translator: %s = %.4f (untrained %.4f); checkpoint %s",
        monitor,
        final.get(monitor, float("nan")),
        untrained.get(monitor, float("nan")),
        best,
    )
    return TranslatorCheckpoints(last, best, final, untrained, seed, str(root))


def _validate(cfg: Config, root: Path, module: pl.LightningModule, dm) -> dict[str, float]:
    """Validation metrics of the freshly initialised model (single process, no logging)."""
    trainer = build_trainer(
        cfg, root / "untrained", logger=False, devices=1, strategy="auto", enable_progress_bar=False
    )
    (metrics,) = trainer.validate(module, dm, verbose=False)
    return {k: float(v) for k, v in metrics.items()}
