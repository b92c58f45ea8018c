"""Stage `evaluate`: pseudo labels for every U image by each strategy and fold, and their Dice.

Each strategy (`axondeepsynth/strategies.py`) averages the softmax of its models, each trained
on its training set and shown its input (U, or every draw of U translated into L's look); a
strategy trained on U's own images (the oracle, self_training) segments only the U images its
fold held out. self_training is trained here, after the strategy that teaches it.
Predictions are blended softmax at the working scale, resized to each image's stored size, and
written in AxonDeepSeg's convention (`<name>_seg-{axon,myelin,axonmyelin}.png`) under
`pseudo_labels/<strategy>/fold<k>/`, plus an nnU-Net raw export, each with its confidence map
and its per-axon morphometrics. Dice and morphometrics are compared at the stored resolution
against U's own labels where it has them, and each strategy's agreement with the others.
Everything lands in `results.json`; the log ends with the recommended strategy, how
self-training did against its teacher and the images to check first, and the kept model is
copied to `model/` (`export.py`).
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
from axondeepsynth.pipeline import export, keys, train_segmenter, translate
from axondeepsynth.pipeline.context import ENSEMBLE, Part, Run, part_name
from axondeepsynth.pipeline.pictures import morphometrics_figure, save_comparison
from axondeepsynth.strategies import INPUT_TRANSLATION, STRATEGIES, TRAINING_SETS, Strategy
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
    """The weights a strategy applies: seg.checkpoint's, but always the last for a model
    trained on U (its best is picked on the images it is scored on)."""
    which = "last" if strategy.held_out else run.cfg.seg.checkpoint
    return getattr(run.outputs.segmenters[train_set, fold], which)


class Predictions:
    """Class probabilities of the run's proxies on U's images, each model loaded once. Where
    several strategies apply one model to one input (fused applies tutorship's and
    adaptation's), each image's probabilities are made once, kept on disk under
    `evaluate_cache/` while evaluate runs, and read back, bitwise the same."""

    def __init__(self, run: Run) -> None:
        self.run, self.models = run, {}
        self.tile, self.overlap = run.cfg.seg_tiling()
        self.batch_size = run.tiles_per_pass(run.cfg.seg.predict_batch_size)
        self.inputs = {}
        self.dir = run.out / "evaluate_cache"
        shutil.rmtree(self.dir, ignore_errors=True)  # a stopped run's: its proxies may be new
        self.uses = Counter(
            member
            for s in run.strategies
            if not s.pseudo
            for part in run.parts(s)
            for member in self.members(s, part)
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
            net = self.run.cfg.seg.net
            self.models[ckpt] = proxy.load(ckpt, self.run.device, net.tta_flips, str(net.window))
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
    seg = run.cfg.seg
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
        pred = postprocess.clean(pred, sample.pixel_size, seg.postprocess, sample.image)
        for kind, mask in to_masks(pred).items():
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
    if seg.export_nnunet:
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
    Dice, or, when U has no labels, of the `seg.n_overlays` least confident ones."""
    if per_image:
        ranked = sorted(per_image, key=lambda k: per_image[k]["axon"])
        chosen = {"worst": ranked[0], "best": ranked[-1]}
    else:
        ranked = sorted(confidences, key=confidences.get)[: run.cfg.seg.n_overlays]
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
    cfg = run.cfg
    strategies, fibres, truth = {}, {}, {}

    predictions = Predictions(run)

    def evaluate_strategy(strategy: Strategy, parts: list[Part]) -> None:
        record = {"train_set": "+".join(strategy.train_sets), "folds": {}}
        record = strategies.setdefault(strategy.name, record)
        for part in parts:
            scores, measured = evaluate_fold(run, strategy, part, truth, predictions)
            if part == ENSEMBLE:  # beside the folds: the folds' mean ± std stays the paper's
                record[ENSEMBLE] = scores
            else:
                record["folds"][str(part)] = scores
                fibres.setdefault(strategy.name, []).extend(measured)
            predictions.release(strategy, part)

    # fold by fold, then the ensembles: what strategies share is let go after its last use
    for part in [*run.folds, ENSEMBLE]:
        for strategy in run.strategies:
            if not strategy.pseudo and part in run.parts(strategy):
                evaluate_strategy(strategy, [part])
    predictions.close()
    candidates = [s.name for s in run.strategies if not s.held_out]  # each labels all of U
    if len(candidates) > 2:  # between two, agreement is the same number for both
        for fold in run.folds:
            for name, score in agreement(run, candidates, fold).items():
                strategies[name]["folds"][str(fold)]["agreement"] = score
    check = check_translator(run)
    for strategy in run.strategies:
        if strategy.pseudo:  # self-training: its teacher's pseudo labels exist now
            run.outputs.teacher = _teacher(run, strategies, check)
            if run.outputs.teacher is None:
                log.warning("self_training: no strategy to learn from passed; it is skipped")
                continue
            for train_set in strategy.train_sets:
                train_segmenter.train(run, train_set)
            evaluate_strategy(strategy, run.parts(strategy))
            _compare_with_teacher(strategies[strategy.name], strategies[run.outputs.teacher], run)
    if any(fibres.values()):
        true = [row for rows in truth.values() for row in rows]
        io.write_bytes(run.out / "morphometrics.png", morphometrics_figure(fibres, true))
    results = {
        "task_name": cfg.task_name,
        "run_dir": str(run.out),
        "config_hash": keys.results(cfg),  # the folds of a sweep share it
        "recipe_hash": keys.results(cfg, seeded=False),  # and runs of other seeds
        "seed": cfg.seed,  # the proxies', and the translator's unless it was restarted
        "translator_seed": run.outputs.translator.seed if run.outputs.translator else None,
        "backend": str(cfg.seg.backend),
        "source": _domain_name(run, "L"),
        "target": _domain_name(run, "U"),
        "data": {
            w: {"root": run.domain_config(w).describe(), "n_images": len(run.domain(w))}
            for w in ("L", "U")
        },
        "translation": run.outputs.translator.metrics if run.outputs.translator else {},
        "translator_check": check,
        "strategies": strategies,
    }
    io.write_text(run.results_file, json.dumps(results, indent=2))
    rows = aggregate([results | {"path": str(run.results_file)}])
    log.info("%s", "".join(notes([results], rows)).rstrip())
    if translator_check.failed(results):
        log.warning("%s", translator_check.summary(results).removeprefix("- "))
    if rows:
        publish(run, rows, check)
    else:
        log.info(
            "U has no labels: pseudo labels are in %s, there is no Dice to report",
            run.pseudo_label_root,
        )
    _export(run, results)
    run.outputs.results = str(run.results_file)
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


def _teacher(run: Run, strategies: dict, check: dict) -> str | None:
    """seg.self_train_from, or the strategy recommended from the results so far (never one
    made through a translator that failed its check)."""
    chosen = run.cfg.seg.self_train_from
    record = {"strategies": strategies, "translator_check": check}
    return recommended([record]) if chosen == "recommended" else chosen


def _compare_with_teacher(student: dict, teacher: dict, run: Run) -> None:
    """Beside each self-training fold, its teacher's Dice on the same held-out images (the
    pseudo labels it learned from: its ensemble's, else its first fold's)."""
    part = run.handed_on(STRATEGIES[run.outputs.teacher])
    taught = (teacher[ENSEMBLE] if part == ENSEMBLE else teacher["folds"][str(part)])["per_image"]
    student["teacher"] = run.outputs.teacher
    for fold in student["folds"].values():
        same = [taught[k] for k in fold["per_image"] if k in taught]
        if same:
            fold["teacher"] = {c: float(np.mean([d[c] for d in same])) for c in CLASSES}


def _export(run: Run, results: dict) -> None:
    """Keep seg.export's strategy as the run's model: by default the self-trained one where the
    run has it, else the recommended one."""
    seg = run.cfg.seg
    name = seg.export
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
        part = run.handed_on(strategy) if seg.export_fold is None else seg.export_fold
        export.export(run, strategy, part, lambda t, fold: checkpoint(run, strategy, t, fold))


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
