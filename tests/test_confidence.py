"""Confidence of pseudo labels: per pixel from the averaged softmax, per image, and the report's
list of the images to check first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from axondeepsynth import findings, report
from axondeepsynth.inference import confidence, image_confidence


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(3, dtype=np.float32)[labels].transpose(2, 0, 1)


def test_confidence_is_one_where_all_members_agree_and_lower_where_they_do_not() -> None:
    a = np.array([[0, 1], [2, 2]])
    b = np.array([[0, 1], [2, 1]])  # disagrees on one pixel
    c = np.array([[0, 2], [2, 1]])  # and on another
    conf = confidence(np.mean([one_hot(m) for m in (a, b, c)], axis=0))
    np.testing.assert_allclose(conf, [[1.0, 2 / 3], [1.0, 2 / 3]], rtol=1e-6)
    assert confidence(np.full((3, 2, 2), 1 / 3)).max() == pytest.approx(1 / 3)


def test_image_confidence_looks_at_the_fibres() -> None:
    conf = np.array([[1.0, 0.5], [1.0, 1.0]])
    assert image_confidence(conf, np.array([[0, 2], [0, 0]])) == 0.5  # only the fibre pixel
    assert image_confidence(conf, np.zeros((2, 2), np.uint8)) == pytest.approx(0.875)


def test_the_report_lists_the_least_confident_images_first(tmp_path: Path) -> None:
    fold = {
        "per_image": {"a": {"axon": 0.9, "myelin": 0.8}, "b": {"axon": 0.4, "myelin": 0.3}},
        "mean": {"axon": 0.65, "myelin": 0.55},
        "confidence": {"b": 0.61, "a": 0.93, "c": 0.72},  # c: unlabelled
    }
    record = {
        "path": str(tmp_path / "results.json"),
        "strategies": {"tutorship": {"folds": {"0": fold}}},
    }
    text = findings.to_check([record], n=2)
    assert "tutorship: b (fold 0: 0.610, axon Dice 0.400), c (fold 0: 0.720)" in text
    assert findings.to_check([json.loads(json.dumps({**record, "strategies": {}}))]) == ""


def _record(labelled: bool) -> dict:
    def fold(axon: float, confidences: list[float]) -> dict:
        scores = {"confidence": {f"img{i}": c for i, c in enumerate(confidences)}}
        if labelled:
            per_image = {f"img{i}": {"axon": axon, "myelin": axon} for i in range(len(confidences))}
            scores |= {"per_image": per_image, "mean": {"axon": axon, "myelin": axon}}
        return scores

    strategies = {
        "direct": {"folds": {"0": fold(0.2, [0.6, 0.7])}},
        "tutorship": {"folds": {"0": fold(0.7, [0.9, 0.95]), "1": fold(0.72, [0.92])}},
        "adaptation": {"folds": {"0": fold(0.75, [0.8, 0.85])}},
        "oracle": {"folds": {"0": fold(0.9, [0.99])}},  # never a candidate
    }
    return {"path": "r/results.json", "source": "TEM", "target": "SEM", "strategies": strategies}


def test_the_recommendation_never_reads_u_labels() -> None:
    with_labels, without = findings.recommend([_record(True)]), findings.recommend([_record(False)])
    assert "recommended **tutorship**" in without and "oracle" not in without
    assert (
        with_labels.splitlines()[1]
        == without.splitlines()[1] + "; the best by axon Dice is adaptation"
    )


def test_the_report_of_an_unlabelled_run_recommends_and_lists(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_record(False)))
    assert report.main([str(run)]) == 0
    out = capsys.readouterr().out
    assert "recommended **tutorship**" in out and "to check first" in out
    assert "recommended **tutorship**" in (run / "report" / "table.md").read_text()


class OneHot:
    """A stand-in proxy that is certain of the label map it is shown."""

    def predict_proba(self, labels, *args):
        return one_hot(labels)


def _evaluate_with(tmp_path: Path, monkeypatch, strategy: str, models: list) -> Path:
    """Run evaluate_fold on one 2x2 U image with stand-in models; return its output folder."""
    from conftest import StandInPredictions, compose_cfg

    from axondeepsynth import strategies
    from axondeepsynth.data.records import Sample
    from axondeepsynth.pipeline import evaluate
    from axondeepsynth.pipeline.context import Run

    u = [Sample("u1", "s", np.zeros((2, 2), np.float32), 0.1, None, Path("u.png"), (2, 2))]
    run = Run(compose_cfg("+experiment=demo", tmp=tmp_path), tmp_path / "run")
    monkeypatch.setattr(run, "domain", lambda which, native=False: u)
    given = StandInPredictions(models)
    evaluate.evaluate_fold(run, strategies.STRATEGIES[strategy], 0, truth={}, predictions=given)
    return run.out / "pseudo_labels" / strategy / "fold0"


def test_translation_draws_lower_confidence_where_they_disagree(tmp_path, monkeypatch) -> None:
    """Three draws of one U->L translation: the pixels where the proxy's answers differ between
    draws lose confidence; the pseudo label is the argmax of the mean over draws."""
    import cv2

    a, b, c = np.array([[0, 1], [2, 2]]), np.array([[0, 1], [2, 1]]), np.array([[0, 2], [2, 1]])
    out = _evaluate_with(tmp_path, monkeypatch, "adaptation", [(OneHot(), [[a, b, c]])])
    conf = cv2.imread(str(out / "u1_confidence.png"), cv2.IMREAD_GRAYSCALE) / 255
    np.testing.assert_allclose(conf, [[1.0, 2 / 3], [1.0, 2 / 3]], atol=1 / 255)
    label = cv2.imread(str(out / "u1_seg-axonmyelin.png"), cv2.IMREAD_GRAYSCALE)
    assert label.tolist() == [[0, 127], [255, 127]]  # 1 of 3 draws says axon at (1, 1)


def test_a_model_weighs_once_in_fused_however_many_draws_it_sees(tmp_path, monkeypatch) -> None:
    """fused averages its models, each first averaged over its input's draws: three draws of
    U->L do not outvote tutorship's single look at U."""
    import cv2

    tutor, draws = np.array([[1, 1], [1, 1]]), [np.array([[2, 2], [2, 1]])] * 3
    models = [(OneHot(), [[tutor]]), (OneHot(), [draws])]
    out = _evaluate_with(tmp_path, monkeypatch, "fused", models)
    conf = cv2.imread(str(out / "u1_confidence.png"), cv2.IMREAD_GRAYSCALE) / 255
    np.testing.assert_allclose(conf, [[0.5, 0.5], [0.5, 1.0]], atol=1 / 255)


def test_the_recommendation_follows_agreement_where_it_was_measured() -> None:
    """fused, less confident than tutorship, is the one the others back up most: it is chosen,
    with or without U's labels."""
    records = {}
    for labelled in (True, False):
        record = _record(labelled)
        record["strategies"]["fused"] = {
            "folds": {"0": _record(labelled)["strategies"]["adaptation"]["folds"]["0"]}
        }
        for name, score in {
            "direct": 0.1,
            "tutorship": 0.6,
            "adaptation": 0.62,
            "fused": 0.7,
        }.items():
            for fold in record["strategies"][name]["folds"].values():
                fold["agreement"] = score
        records[labelled] = findings.recommend([record])
    assert "recommended **fused**, the other strategies' pseudo labels agree" in records[False]
    assert records[True].splitlines()[1].startswith(records[False].splitlines()[1])


def test_agreement_is_the_mean_dice_against_the_other_strategies(tmp_path, monkeypatch) -> None:
    from conftest import compose_cfg

    from axondeepsynth.data import images
    from axondeepsynth.data.records import Sample
    from axondeepsynth.pipeline import evaluate
    from axondeepsynth.pipeline.context import Run

    run = Run(compose_cfg("+experiment=demo", tmp=tmp_path), tmp_path / "run")
    u = [Sample("u1", "s", np.zeros((1, 4), np.float32), 0.1, None, Path("u.png"), (1, 4))]
    monkeypatch.setattr(run, "domain", lambda which, native=False: u)
    masks = {"a": [255, 255, 127, 0], "b": [255, 255, 127, 0], "c": [255, 0, 0, 127]}
    for name, row in masks.items():
        images.write_png(
            run.out / "pseudo_labels" / name / "fold0" / "u1_seg-axonmyelin.png",
            np.array([row], np.uint8),
        )
    # a vs b: axon 1, myelin 1; a vs c: axon 2/3, myelin 0
    expected_a = np.mean([1.0, np.mean([2 / 3, 0.0])])
    scores = evaluate.agreement(run, ["a", "b", "c"], 0)
    assert scores["a"] == pytest.approx(expected_a, abs=1e-6) == scores["b"]
    assert scores["c"] == pytest.approx(1 / 3, abs=1e-6)
