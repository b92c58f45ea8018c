"""Stage `export`: the run's kept model in `<run>/model/`: one strategy's proxies of one fold
or of every fold (its ensemble, averaged), and the translator its inputs need, copied beside
`model.json`, which says what `python -m axondeepsynth.segment` needs to apply them to new
images: the pixel size they work at, the tiling, each proxy's input (U as it is, or translated
into L's look) and how the translation was drawn. An nnU-Net proxy is copied as a model folder
(`dataset.json`, `plans.json`, `fold_<k>/`) that `nnUNetv2_predict_from_modelfolder` also runs.
The fold's (or the ensemble's) Dice in results.json is the kept model's on the same images.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
from dataclasses import asdict
from pathlib import Path

from axondeepsynth import io, translator_check
from axondeepsynth.data.labels import CLASS_NAMES
from axondeepsynth.findings import recommended
from axondeepsynth.inference import MODEL_FILE
from axondeepsynth.pipeline.context import ENSEMBLE, Part, Run, part_name
from axondeepsynth.pipeline.evaluate import checkpoint
from axondeepsynth.strategies import INPUT_TRANSLATION, STRATEGIES, Strategy

log = logging.getLogger(__name__)


def run(run: Run) -> None:
    """Keep export.model's strategy as the run's model: by default the self-trained one where the
    run has it, else the recommended one; never one made through a translator that failed its
    check."""
    chosen, results = run.cfg.export, run.outputs.scores.results
    name = chosen.model
    if name == "recommended":
        if translator_check.failed(results):
            log.warning("no model kept: the translator failed its check (see above)")
            return
        name = "self_training" if "self_training" in results["strategies"] else None
        name = name or recommended([results])
    if name and not translator_check.trusted(name, results):
        log.warning("%s is not kept as the model: the translator failed its check", name)
        return
    if name:
        strategy = STRATEGIES[name]
        part = run.handed_on(strategy) if chosen.fold is None else chosen.fold
        export(run, strategy, part, lambda t, fold: checkpoint(run, strategy, t, fold))


def export(run: Run, strategy: Strategy, part: Part, checkpoint_of) -> Path:
    """Copy `strategy`'s models of a fold, or of every fold (`ensemble`), their weights chosen
    by `checkpoint_of(train_set, fold)`, into `<run>/model/`, replacing a previous export of
    this run whole."""
    cfg, out = run.cfg, run.model_dir
    staging = run.out / "model.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    members = []
    for fold, train_set, shown in run.fold_models(strategy, part):
        name = f"{train_set}_fold{fold}" if part == ENSEMBLE else train_set
        copied = _copy_proxy(Path(checkpoint_of(train_set, fold)), staging, train_set, name)
        members.append({"checkpoint": copied, "input": shown})
    translator = None
    if any(INPUT_TRANSLATION[shown] for _, shown in strategy.models):
        made, t = run.outputs.translations["u2l"], cfg.translator.sample
        shutil.copy2(made.checkpoint, staging / "translator.ckpt")
        translator = {
            "checkpoint": "translator.ckpt",
            "sampler": made.sampler,
            "tile": cfg.translator.data.tile_size,
            "overlap": t.tile_overlap,
            "batch_size": run.tiles_per_pass(t.batch_size),
            "precision": t.precision,
            "seed": t.seed,
            "samples": run.draws("u2l"),
        }
    seg, p = cfg.segmenter, cfg.segmenter.predict
    meta = {
        "strategy": strategy.name,
        "fold": part,
        "backend": str(seg.backend),
        "pixel_size_um": _working_pixel_size(run),
        "resize": str(cfg.data.resize),
        "modality": cfg.data.unlabeled.modality,  # what it segments (BIDS suffix)
        "tile": seg.data.tile_size,
        "overlap": p.tile_overlap,
        "tta_flips": p.tta_flips,
        "window": str(p.window),
        "precision": p.precision,
        "postprocess": asdict(p.postprocess),
        "members": members,
        "translator": translator,
        "classes": {str(value): name for value, name in CLASS_NAMES.items()},
        "run": str(run.out),
    }
    io.write_text(staging / MODEL_FILE, json.dumps(meta, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    log.info("kept model (%s, %s) in %s", strategy.name, part_name(part), out)
    return out


def _copy_proxy(ckpt: Path, into: Path, train_set: str, name: str) -> str:
    """Copy one proxy's weights (Lightning's as `<name>.ckpt`, nnU-Net's into its training
    set's model folder, where its folds meet); return their path relative to `into`."""
    if ckpt.suffix != ".pth":  # Lightning: one file
        shutil.copy2(ckpt, into / f"{name}.ckpt")
        return f"{name}.ckpt"
    fold_dir, model_dir = ckpt.parent, ckpt.parent.parent  # nnU-Net: a model folder subset
    target = into / "nnunet" / train_set / model_dir.name
    (target / fold_dir.name).mkdir(parents=True)
    shutil.copy2(model_dir / "dataset.json", target / "dataset.json")
    # the older nnU-Net of AxonDeepSeg 5.5 reads the network from flat keys: written beside
    from axondeepsynth.training.nnunet import with_legacy_keys

    plans = with_legacy_keys(json.loads((model_dir / "plans.json").read_text()))
    io.write_text(target / "plans.json", json.dumps(plans, indent=2))
    shutil.copy2(ckpt, target / fold_dir.name / ckpt.name)
    return str((target / fold_dir.name / ckpt.name).relative_to(into))


def _working_pixel_size(run: Run) -> float:
    """The pixel size (µm) U's images were segmented at."""
    sizes = [s.pixel_size for s in run.domain("U")]
    if max(sizes) - min(sizes) > 1e-6 * max(sizes):
        log.warning(
            "U's images were segmented at %g-%g µm/px: the kept model records the median",
            min(sizes),
            max(sizes),
        )
    return float(statistics.median(sizes))
