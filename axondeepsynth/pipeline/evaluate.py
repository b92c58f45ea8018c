"""Stage `evaluate`: pseudo labels for every U image by each strategy and fold, and their Dice.

- direct:     the model trained on L segments U as it is;
- tutorship:  the model trained on L->U translations segments U;
- adaptation: the model trained on L segments the U->L translations of U;
- oracle:     the model trained on U's own labels segments the U images of its held-out fold
              (the ceiling the others are read against).
Predictions are blended softmax at the working scale, resized to each image's stored size, and
written in AxonDeepSeg's convention (`<name>_seg-{axon,myelin,axonmyelin}.png`) under
`pseudo_labels/<strategy>/fold<k>/`, plus an nnU-Net raw export. Dice is computed per image at
the stored resolution against U's own labels where it has them. Everything lands in
`results.json`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
from hydra.utils import instantiate
from tqdm.auto import tqdm

from axondeepsynth import report
from axondeepsynth.data import images
from axondeepsynth.data.formats import nnunet
from axondeepsynth.data.labels import to_masks
from axondeepsynth.errors import ConfigError
from axondeepsynth.modules.segmenter import Segmenter, dice_per_class
from axondeepsynth.pipeline.artifacts import config_hash
from axondeepsynth.pipeline.context import STRATEGY_DIRECTION, STRATEGY_TRAIN_SET, Run
from axondeepsynth.pipeline.pictures import save_comparison

log = logging.getLogger(__name__)
CLASSES = ("axon", "myelin")


def to_shape(probs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Label map of `shape` from probabilities [C, h, w] (linearly resized, then argmax)."""
    if probs.shape[1:] != tuple(shape):
        probs = cv2.resize(np.moveaxis(probs, 0, -1), shape[::-1], interpolation=cv2.INTER_LINEAR)
        probs = np.moveaxis(probs, -1, 0)
    return probs.argmax(0).astype(np.uint8)


def strategy_inputs(run: Run, strategy: str) -> list[np.ndarray]:
    """What the strategy's model sees for each U image (at the working scale)."""
    if strategy != "adaptation":
        return [s.image for s in run.domain("U")]
    translated = run.artifacts.get("translated", {}).get(STRATEGY_DIRECTION[strategy])
    if translated is None:
        raise ConfigError(
            "stages",
            "adaptation needs the U->L translation",
            "add translate to stages (or reuse a run via translator.dir)",
        )
    return [images.read_image(translated["files"][s.key]) for s in run.domain("U")]


def _summary(per_image: dict[str, dict[str, float]]) -> dict:
    """Per-image Dice with mean and std over images (None when U has no labels)."""
    if not per_image:
        return {"per_image": {}, "mean": None, "std": None}
    scores = {c: np.array([d[c] for d in per_image.values()]) for c in CLASSES}
    return {
        "per_image": per_image,
        "mean": {c: float(v.mean()) for c, v in scores.items()},
        "std": {c: float(v.std()) for c, v in scores.items()},
    }


def held_out(run: Run, train_set: str, fold: int) -> set[str] | None:
    """Keys of the U images a fold's model may be scored on: its held-out images when it was
    trained on U itself (read from the fold's recorded split), else None (all of U)."""
    if train_set != "U":
        return None
    split = run.out / "seg" / "U" / f"fold{fold}" / "split.json"
    return set(json.loads(split.read_text())["val"])


def evaluate_fold(run: Run, strategy: str, fold: int, model: Segmenter) -> dict:
    """Pseudo-label every U image with one strategy's model; write files; return Dice."""
    cfg, seg = run.cfg, run.cfg.seg
    out = run.out / "pseudo_labels" / strategy / f"fold{fold}"
    keep = held_out(run, STRATEGY_TRAIN_SET[strategy], fold)
    pairs = [
        (sample, x)
        for sample, x in zip(
            run.domain("U", native=True), strategy_inputs(run, strategy), strict=True
        )
        if keep is None or sample.key in keep
    ]
    per_image, pseudo, preds = {}, [], {}
    tile, overlap = cfg.seg_tiling()
    batch_size = run.tiles_per_pass(seg.predict_batch_size)
    for sample, x in tqdm(pairs, desc=f"{strategy} fold {fold}", unit="img"):
        probs = model.predict_proba(x, tile, overlap, batch_size)
        pred = to_shape(probs, sample.image.shape)
        for kind, mask in to_masks(pred).items():
            images.write_png(out / f"{sample.key}_seg-{kind}.png", mask)
        pseudo.append(replace(sample, labels=pred, name=sample.key.replace("/", "_")))
        preds[sample.key] = (sample, pred)
        if sample.labels is not None:
            per_image[sample.key] = {
                k: round(v, 6) for k, v in dice_per_class(pred, sample.labels).items()
            }
    _save_overlays(run, strategy, fold, preds, per_image)
    if seg.export_nnunet:
        nnunet.write(pseudo, out / f"Dataset500_{strategy}", f"{strategy} pseudo labels")
    return _summary(per_image)


def _save_overlays(
    run: Run, strategy: str, fold: int, preds: dict, per_image: dict[str, dict[str, float]]
) -> None:
    """image | ground truth | pseudo label of the worst and best U image by axon Dice, or of
    the first `seg.n_overlays` images when U has no labels."""
    if per_image:
        ranked = sorted(per_image, key=lambda k: per_image[k]["axon"])
        chosen = {"worst": ranked[0], "best": ranked[-1]}
    else:
        chosen = {str(i): key for i, key in enumerate(list(preds)[: run.cfg.seg.n_overlays])}
    for tag, key in chosen.items():
        sample, pred = preds[key]
        name = f"{strategy}_fold{fold}_{tag}_{key.replace('/', '_')}.png"
        save_comparison(run.out / "overlays" / name, sample.image, sample.labels, pred)


def run(run: Run) -> dict:
    cfg, seg = run.cfg, run.cfg.seg
    checkpoints = run.artifacts.get("segmenters", {})
    strategies = {}
    for strategy in seg.strategies:
        folds = {}
        for fold in run.folds:
            ckpt = checkpoints.get(f"{STRATEGY_TRAIN_SET[strategy]}/fold{fold}")
            if isinstance(ckpt, dict):  # the oracle's best would be picked on its test images
                ckpt = ckpt["last" if strategy == "oracle" else seg.checkpoint]
            if ckpt is None:
                raise ConfigError(
                    "stages",
                    f"no segmenter for {strategy} fold {fold}",
                    "add train_segmenter to stages",
                )
            model = Segmenter.load_from_checkpoint(ckpt, map_location=run.device, weights_only=True)
            folds[str(fold)] = evaluate_fold(run, strategy, fold, model)
        strategies[strategy] = {"train_set": STRATEGY_TRAIN_SET[strategy], "folds": folds}
    results = {
        "task_name": cfg.task_name,
        "run_dir": str(run.out),
        "config_hash": config_hash(
            asdict(cfg.data),
            cfg.model.identity(),
            asdict(cfg.trainer),
            {**asdict(seg), "fold": None},
            cfg.seed,
        ),  # folds share it
        "source": _domain_name(run, "L"),
        "target": _domain_name(run, "U"),
        "data": {
            w: {"root": run.domain_config(w).describe(), "n_images": len(run.domain(w))}
            for w in ("L", "U")
        },
        "translation": run.artifacts.get("translator_metrics", {}),
        "strategies": strategies,
    }
    images.write_text(run.out / "results.json", json.dumps(results, indent=2))
    rows = report.aggregate([results | {"path": str(run.out / "results.json")}])
    if rows:
        publish(run, rows)
    else:
        log.info(
            "U has no labels: pseudo labels are in %s, there is no Dice to report",
            run.out / "pseudo_labels",
        )
    # the sweep objective: mean axon Dice of the table's first row
    return {
        "results": str(run.out / "results.json"),
        "objective": rows[0]["axon_mean"] if rows else None,
    }


def publish(run: Run, rows: list[dict]) -> None:
    """Print the paper's table, save its chart, and send both (and overlays) to W&B."""
    log.info("pseudo-label Dice on U (%s):\n%s", run.out, report.markdown(rows))
    chart = run.out / "dice.png"
    images.write_bytes(chart, report.chart(rows))
    wandb_confs = [c for c in run.cfg.logger.values() if "Wandb" in c.get("_target_", "")]
    for conf in wandb_confs:
        logger = instantiate(conf, save_dir=str(run.out))
        columns, data = report.table_for_logging(rows)
        logger.log_table("eval/dice", columns=columns, data=data)
        logger.log_image("eval/dice_chart", [str(chart)])
        overlays = sorted((run.out / "overlays").glob("*.png"))
        if overlays:
            logger.log_image(
                "eval/overlays", [str(p) for p in overlays], caption=[p.stem for p in overlays]
            )
        logger.finalize("success")


def _domain_name(run: Run, which: str) -> str:
    cfg = run.domain_config(which)
    return cfg.modality or Path(cfg.datasets()[0].root).name
