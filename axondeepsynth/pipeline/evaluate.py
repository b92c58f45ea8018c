"""Stage `evaluate`: pseudo labels for every U image by each strategy and fold, and their Dice.

Each strategy (`axondeepsynth/strategies.py`) averages the softmax of its models, each trained
on its training set and shown its input (U, or every draw of U translated into L's look); a
strategy trained on U's own images (the oracle, self_training) segments only the U images its
fold held out. self_training learns from another strategy's pseudo labels, so stage
`self_train` trains and scores it after this one, with the same functions (`score`).
Predictions are blended softmax at the working scale, resized to each image's stored size, and
written in AxonDeepSeg's convention (`<name>_seg-{axon,myelin,axonmyelin}.png`) under
`pseudo_labels/<strategy>/fold<k>/`, plus an nnU-Net raw export, each with its confidence map
and its per-axon morphometrics. Dice and morphometrics are compared at the stored resolution
against U's own labels where it has them, and each strategy's agreement with the others.
Everything lands in `results.json` (`context.Scores`); the last scoring stage reports: the log
ends with the recommended strategy, how self-training did against its teacher and the images
to check first. Stage `export` keeps the model.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from tqdm.auto import tqdm

from axondeepsynth import detection, io, morphometrics, postprocess, translator_check
from axondeepsynth.data import images
from axondeepsynth.data.labels import AXON, to_masks
from axondeepsynth.data.layouts import nnunet
from axondeepsynth.findings import aggregate, chart, markdown, notes, recommended, table_for_logging
from axondeepsynth.inference import confidence, image_confidence
from axondeepsynth.pipeline import keys, translate
from axondeepsynth.pipeline.context import ENSEMBLE, Part, Run, Scores, part_name
from axondeepsynth.pipeline.pictures import morphometrics_figure, save_comparison
from axondeepsynth.strategies import INPUT_TRANSLATION, TRAINING_SETS, Strategy
from axondeepsynth.training import proxy
from axondeepsynth.training.segmenter import dice_per_class

log = logging.getLogger(__name__)
CLASSES = ("axon", "myelin")


def model_inputs(run: Run, shown: str) -> list[list[np.ndarray | str]]:
    """What a model shown `shown` sees for each U image (at the working scale): the image, or
    the files of every draw of its translation (read when used)."""
    translation = INPUT_TRANSLATION[shown]
    if translation is None:
        return [[s.image] for s in run.domain("U")]
    made = run.outputs.translations[translation]  # validate() asked for translate
    return [made.images(s.key) for s in run.domain("U")]


def _array(x: np.ndarray | str) -> np.ndarray:
    return images.read_image(x) if isinstance(x, str) else x


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


def held_out(run: Run, strategy: Strategy, fold: int) -> set[str] | None:
    """Keys of the U images a strategy's fold may be scored on: the images its fold held out
    when it trained on U itself (read from the fold's recorded split), else None (all of U)."""
    if not strategy.held_out:
        return None
    (train_set,) = (t for t in strategy.train_sets if TRAINING_SETS[t].labels_from == "U")
    split = run.proxy_dir(train_set, fold) / "split.json"
    return set(json.loads(split.read_text())["val"])


def checkpoint(run: Run, strategy: Strategy, train_set: str, fold: int) -> str:
    """The weights a strategy applies: segmenter.predict.which, but always the last for a model
    trained on U (its best is picked on the images it is scored on)."""
    which = "last" if strategy.held_out else run.cfg.segmenter.predict.which
    return getattr(run.outputs.segmenters[train_set, fold], which)


class Predictions:
    """Class probabilities of the proxies of `strategies` on U's images, each model loaded
    once. Where several strategies apply one model to one input (fused applies tutorship's and
    adaptation's), each image's probabilities are made once, kept on disk under
    `evaluate_cache/` until their last use, and read back, bitwise the same."""

    def __init__(self, run: Run, strategies: list[Strategy]) -> None:
        self.run, self.models = run, {}
        self.predict = p = run.cfg.segmenter.predict
        self.tile, self.overlap = run.cfg.segmenter.data.tile_size, p.tile_overlap
        self.batch_size = run.tiles_per_pass(p.batch_size)
        self.inputs = {}
        self.dir = run.out / "evaluate_cache"
        shutil.rmtree(self.dir, ignore_errors=True)  # a stopped run's: its proxies may be new
        self.uses = Counter(
            member for s in strategies for part in run.parts(s) for member in self.members(s, part)
        )
        self.left = Counter(self.uses)  # uses still to come

    def members(self, strategy: Strategy, part: Part) -> list[tuple[str, str]]:
        """The (checkpoint, input) of each of a strategy's models for one fold, or for every
        fold (the ensemble)."""
        return [
            (checkpoint(self.run, strategy, t, fold), shown)
            for fold, t, shown in self.run.fold_models(strategy, part)
        ]

    def of(self, ckpt: str, shown: str, i: int) -> np.ndarray:
        """One model's probabilities [C, h, w] of U's i-th image, averaged over the inputs it is
        shown (the image, or the draws of its translation)."""
        shared = self.uses[ckpt, shown] > 1
        path = self.dir / f"{keys.config_hash(ckpt, shown)}_{i}.npy"
        if shared and path.is_file():
            return np.load(path)
        if ckpt not in self.models:
            p = self.predict
            self.models[ckpt] = proxy.load(
                ckpt, self.run.device, p.tta_flips, str(p.window), p.precision
            )
        if shown not in self.inputs:
            self.inputs[shown] = model_inputs(self.run, shown)
        model = self.models[ckpt]
        probs = np.mean(
            [
                model.predict_proba(_array(x), self.tile, self.overlap, self.batch_size)
                for x in self.inputs[shown][i]
            ],
            axis=0,
        )
        if shared:
            self.dir.mkdir(exist_ok=True)
            np.save(path, probs)
        return probs

    def release(self, strategy: Strategy, part: Part) -> None:
        """A strategy's fold or ensemble is scored: delete what no later one will read."""
        for member in self.members(strategy, part):
            self.left[member] -= 1
            if self.uses[member] > 1 and self.left[member] == 0:
                for path in self.dir.glob(f"{keys.config_hash(*member)}_*.npy"):
                    path.unlink()
            ckpt = member[0]
            if all(n <= 0 for (c, _), n in self.left.items() if c == ckpt):
                self.models.pop(ckpt, None)  # no strategy left applies it

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def evaluate_fold(
    run: Run,
    strategy: Strategy,
    part: Part,
    truth: dict[str, list[dict]],
    predictions: Predictions,
) -> tuple[dict, list[dict]]:
    """Pseudo-label every U image (its held-out ones for the oracle) with one strategy's fold
    or ensemble: its models' softmax averaged; write the masks and each image's morphometrics;
    return Dice and morphometrics against U's labels, and the fibres of the pseudo labels.
    `truth` holds the fibres of U's labels by image, measured on first use and shared by all."""
    seg = run.cfg.segmenter
    out = run.pseudo_label_dir(strategy.name, part)
    keep = None if part == ENSEMBLE else held_out(run, strategy, part)
    members = predictions.members(strategy, part)
    per_image, pseudo, preds, fibres, true_fibres, confidences = {}, [], {}, [], [], {}
    found = []  # axon detection counts per labelled image
    chosen = [
        (i, sample)
        for i, sample in enumerate(run.domain("U", native=True))
        if keep is None or sample.key in keep
    ]
    for i, sample in tqdm(chosen, desc=f"{strategy.name} {part_name(part)}", unit="img"):
        probs = np.mean([predictions.of(ckpt, shown, i) for ckpt, shown in members], axis=0)
        probs = proxy.resized(probs, sample.image.shape)
        pred, conf = probs.argmax(0).astype(np.uint8), confidence(probs)
        pred = postprocess.clean(pred, sample.pixel_size, seg.predict.postprocess, sample.image)
        for kind, mask in to_masks(pred):
            images.write_png(out / f"{sample.key}_seg-{kind}.png", mask)
        images.write_png(run.confidence_file(strategy.name, part, sample.key), conf)
        confidences[sample.key] = round(image_confidence(conf, pred), 6)
        pseudo.append(replace(sample, labels=pred))
        preds[sample.key] = (sample, pred, conf)
        measured = measure_fibres(pred, sample, out)
        fibres += measured
        if sample.labels is not None:
            unmyelinated = len(morphometrics.inner(measured)) - len(
                morphometrics.myelinated(measured)
            )
            found.append(detection.counts(pred == AXON, sample.labels == AXON))
            found[-1]["unmyelinated"] = unmyelinated
            per_image[sample.key] = {
                k: round(v, 6) for k, v in dice_per_class(pred, sample.labels).items()
            }
            if sample.key not in truth:
                out_truth = run.truth_dir
                truth[sample.key] = measure_fibres(sample.labels, sample, out_truth)
            true_fibres += truth[sample.key]
    _save_overlays(run, strategy.name, part, preds, per_image, confidences)
    if run.cfg.export.nnunet:
        name = {"Name": f"{strategy.name} pseudo labels"}
        cases = nnunet.case_names(s.key for s in pseudo)
        pseudo = [replace(s, name=cases[s.key]) for s in pseudo]
        nnunet.write(pseudo, out / f"Dataset500_{strategy.name}", None, name)
    summary = _summary(per_image) | {
        "morphometrics": morphometrics.compare(fibres, true_fibres),
        "detection": _detection(found),
        "confidence": dict(sorted(confidences.items(), key=lambda kv: kv[1])),  # least first
    }
    if keep is not None:  # scored on the subjects its fold held out
        summary["subjects"] = sorted({sample.group for _, sample in chosen})
    return summary, fibres


def _detection(found: list[dict]) -> dict | None:
    """A fold's axon detection scores over its labelled images, and its whole axons without
    myelin per image (None without labels)."""
    if not found:
        return None
    per_image = float(np.mean([f["unmyelinated"] for f in found]))
    return detection.scores(found) | {"unmyelinated": per_image}


def agreement(run: Run, names: list[str], fold: int) -> dict[str, float]:
    """For each of `names`, how much the others back its pseudo labels up: Dice (axon and myelin
    averaged) against each other strategy's labels of the same U image, averaged over the others
    and the images. Read back from the written masks, one image at a time."""
    scores: dict[str, list[float]] = {name: [] for name in names}
    for sample in run.domain("U", native=True):
        labels = {name: run.pseudo_labels(name, fold, sample.key) for name in names}
        for a, b in itertools.combinations(names, 2):
            d = dice_per_class(labels[a], labels[b])
            both = float(np.mean([d[c] for c in CLASSES]))
            scores[a].append(both)
            scores[b].append(both)
    return {name: round(float(np.mean(v)), 6) for name, v in scores.items()}


def measure_fibres(labels: np.ndarray, sample, out: Path) -> list[dict]:
    """Per-axon morphometrics of a label map of `sample`, also written as
    `<out>/<key>_morphometrics.csv` (AxonDeepSeg's columns)."""
    rows = morphometrics.measure(labels, sample.pixel_size)
    io.write_text(out / f"{sample.key}_morphometrics.csv", morphometrics.to_csv(rows))
    return rows


def _save_overlays(
    run: Run,
    strategy: str,
    part: Part,
    preds: dict,
    per_image: dict[str, dict[str, float]],
    confidences: dict[str, float],
) -> None:
    """image | ground truth | pseudo label | confidence of the worst and best U image by axon
    Dice, or, when U has no labels, of the `segmenter.predict.n_overlays` least confident ones."""
    if per_image:
        ranked = sorted(per_image, key=lambda k: per_image[k]["axon"])
        chosen = {"worst": ranked[0], "best": ranked[-1]}
    else:
        ranked = sorted(confidences, key=confidences.get)[: run.cfg.segmenter.predict.n_overlays]
        chosen = {f"check{i}": key for i, key in enumerate(ranked)}
    for tag, key in chosen.items():
        sample, pred, conf = preds[key]
        name = _file_name(f"{strategy}_{part_name(part)}_{tag}_{key.replace('/', '_')}", ".png")
        save_comparison(run.overlay_dir / name, sample.image, sample.labels, pred, conf)


def _file_name(stem: str, suffix: str, limit: int = 255) -> str:
    """`stem + suffix`, its stem cut and marked by a hash of it where the name would pass the
    file systems' limit."""
    if len((stem + suffix).encode()) <= limit:
        return stem + suffix
    digest = hashlib.sha1(stem.encode()).hexdigest()[:8]
    cut = stem.encode()[: limit - len(suffix.encode()) - 9].decode(errors="ignore")
    return f"{cut}_{digest}{suffix}"


def run(run: Run) -> None:
    """Score every strategy but those that learn from pseudo labels (stage self_train, which
    then reports), and write results.json."""
    run.outputs.scores = scores = Scores(results=_header(run))
    predictions = Predictions(run, [s for s in run.strategies if not s.pseudo])
    # fold by fold, then the ensembles: what strategies share is let go after its last use
    for part in [*run.folds, ENSEMBLE]:
        for strategy in run.strategies:
            if not strategy.pseudo and part in run.parts(strategy):
                score(run, strategy, [part], predictions)
    predictions.close()
    candidates = [s.name for s in run.strategies if not s.held_out]  # each labels all of U
    if len(candidates) > 2:  # between two, agreement is the same number for both
        for fold in run.folds:
            for name, value in agreement(run, candidates, fold).items():
                scores.results["strategies"][name]["folds"][str(fold)]["agreement"] = value
    scores.results["translator_check"] = check_translator(run)
    save(run)
    if not any(s.pseudo for s in run.strategies):
        report(run)


def _header(run: Run) -> dict:
    """What results.json says about the run before any strategy's scores."""
    cfg = run.cfg
    return {
        "task_name": cfg.task_name,
        "run_dir": str(run.out),
        "config_hash": keys.results(cfg),  # the folds of a sweep share it
        "recipe_hash": keys.results(cfg, seeded=False),  # and runs of other seeds
        "seed": cfg.seed,  # the proxies', and the translator's unless it was restarted
        "translator_seed": run.outputs.translator.seed if run.outputs.translator else None,
        "backend": str(cfg.segmenter.backend),
        "source": _domain_name(run, "L"),
        "target": _domain_name(run, "U"),
        "data": {
            w: {"root": run.domain_config(w).describe(), "n_images": len(run.domain(w))}
            for w in ("L", "U")
        },
        "translation": run.outputs.translator.metrics if run.outputs.translator else {},
        "translator_check": None,  # once the proxies are scored (`check_translator`)
        "strategies": {},
    }


def score(run: Run, strategy: Strategy, parts: list[Part], predictions: Predictions) -> None:
    """Pseudo-label U with `strategy`'s folds or ensemble (`parts`), into the run's scores."""
    scores = run.outputs.scores
    record = {"train_set": "+".join(strategy.train_sets), "folds": {}}
    record = scores.results["strategies"].setdefault(strategy.name, record)
    for part in parts:
        summary, measured = evaluate_fold(run, strategy, part, scores.truth, predictions)
        if part == ENSEMBLE:  # beside the folds: the folds' mean ± std stays the paper's
            record[ENSEMBLE] = summary
        else:
            record["folds"][str(part)] = summary
            scores.fibres.setdefault(strategy.name, []).extend(measured)
        predictions.release(strategy, part)


def save(run: Run) -> None:
    io.write_text(run.results_file, json.dumps(run.outputs.scores.results, indent=2))


def report(run: Run) -> None:
    """What the scores say, once every strategy is scored: the morphometrics figure, the table
    and notes in the log, the chart and W&B, and the sweeper's objective."""
    scores = run.outputs.scores
    results = scores.results
    if any(scores.fibres.values()):
        true = [row for rows in scores.truth.values() for row in rows]
        io.write_bytes(run.out / "morphometrics.png", morphometrics_figure(scores.fibres, true))
    rows = aggregate([results | {"path": str(run.results_file)}])
    log.info("%s", "".join(notes([results], rows)).rstrip())
    if translator_check.failed(results):
        log.warning("%s", translator_check.summary(results).removeprefix("- "))
    if rows:
        publish(run, rows, results["translator_check"])
    else:
        log.info(
            "U has no labels: pseudo labels are in %s, there is no Dice to report",
            run.pseudo_label_root,
        )
    run.outputs.objective = objective(results)


def check_translator(run: Run) -> dict:
    """The translator's content check (`translator_check.py`), from L's labels alone: label
    separation of its L->U translations, and the gap between the L and L2U proxies' validation
    Dice of each fold; unmeasured parts are None (no L->U translations, no such proxies)."""
    separation = translate.label_separation(run)

    def val_dice(train_set: str) -> dict[int, float]:
        found = {f: run.outputs.segmenters.get((train_set, f)) for f in run.folds}
        return {
            f: c.val["val/dice_mean"] for f, c in found.items() if c and "val/dice_mean" in c.val
        }

    gap = translator_check.proxy_gap(val_dice("L"), val_dice("L2U"))
    verdict = translator_check.judge(separation, gap)
    if run.outputs.set_aside:  # translators that failed before this one (translator.restarts)
        verdict["set_aside"] = run.outputs.set_aside
    return verdict


def objective(results: dict) -> float | None:
    """What a Hydra sweeper maximises, without U's labels: the recommended strategy's agreement
    with the others (mean over folds; None where it was not measured)."""
    chosen = recommended([results])
    folds = results["strategies"][chosen]["folds"].values() if chosen else []
    scores = [f["agreement"] for f in folds if "agreement" in f]
    return float(np.mean(scores)) if scores else None


def publish(run: Run, rows: list[dict], check: dict) -> None:
    """Print the paper's table, save its chart, and send both (and overlays, and the
    translator's check) to W&B."""
    log.info("pseudo-label Dice on U (%s):\n%s", run.out, markdown(rows))
    chart_file = run.out / "dice.png"
    io.write_bytes(chart_file, chart(rows))
    wandb_confs = [c for c in run.cfg.logger.values() if "Wandb" in c.get("_target_", "")]
    for conf in wandb_confs:
        logger = instantiate(conf, save_dir=str(run.out))
        columns, data = table_for_logging(rows)
        logger.log_table("eval/dice", columns=columns, data=data)
        logger.log_image("eval/dice_chart", [str(chart_file)])
        if check["passed"] is not None:
            scores = {"check/passed": float(check["passed"])}
            for name in ("label_separation", "proxy_gap"):
                if check[name]:
                    scores[f"check/{name}"] = check[name]["mean"]
            logger.log_metrics(scores)
        if (run.out / "morphometrics.png").is_file():
            logger.log_image("eval/morphometrics", [str(run.out / "morphometrics.png")])
        overlays = sorted(run.overlay_dir.glob("*.png"))
        if overlays:
            logger.log_image(
                "eval/overlays", [str(p) for p in overlays], caption=[p.stem for p in overlays]
            )
        logger.finalize("success")


def _domain_name(run: Run, which: str) -> str:
    cfg = run.domain_config(which)
    return cfg.modality or Path(cfg.datasets()[0].root).name
