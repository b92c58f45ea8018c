"""Stage `self_train`: self_training, a proxy trained on U's own images with another strategy's
pseudo labels (its teacher's: self_train.teacher, by default the recommended one, never one
made through a translator that failed its check), k-fold by subject like the oracle and scored
on the U images its fold held out, beside its teacher's Dice on the same images. Runs after
stage evaluate has scored the teacher, adds to its scores and reports them.
"""

from __future__ import annotations

import logging

import numpy as np

from axondeepsynth.findings import recommended
from axondeepsynth.pipeline import evaluate, train_segmenter
from axondeepsynth.pipeline.context import ENSEMBLE, Run
from axondeepsynth.strategies import STRATEGIES

log = logging.getLogger(__name__)


def run(run: Run) -> None:
    students = [s for s in run.strategies if s.pseudo]
    if not students:
        return  # evaluate has reported
    results = run.outputs.scores.results
    teacher = _teacher(run, results)
    if teacher is None:
        log.warning("self_training: no strategy to learn from passed; it is skipped")
    else:
        sets = dict.fromkeys(t for s in students for t in s.train_sets)
        train_segmenter.train(run, list(sets), teacher)
        predictions = evaluate.Predictions(run, students)
        for student in students:
            evaluate.score(run, student, run.parts(student), predictions)
            _compare_with_teacher(run, results["strategies"], student.name, teacher)
        predictions.close()
    evaluate.save(run)
    evaluate.report(run)


def _teacher(run: Run, results: dict) -> str | None:
    """self_train.teacher, or the strategy recommended from the scores so far."""
    chosen = run.cfg.self_train.teacher
    return recommended([results]) if chosen == "recommended" else chosen


def _compare_with_teacher(run: Run, strategies: dict, student: str, teacher: str) -> None:
    """Beside each of the student's folds, its teacher's Dice on the same held-out images (of
    the pseudo labels it learned from: its ensemble's, else its first fold's)."""
    part = run.handed_on(STRATEGIES[teacher])
    taught = (
        strategies[teacher][ENSEMBLE]
        if part == ENSEMBLE
        else strategies[teacher]["folds"][str(part)]
    )
    strategies[student]["teacher"] = teacher
    for fold in strategies[student]["folds"].values():
        same = [taught["per_image"][k] for k in fold["per_image"] if k in taught["per_image"]]
        if same:
            fold["teacher"] = {c: float(np.mean([d[c] for d in same])) for c in evaluate.CLASSES}
