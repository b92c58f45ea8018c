"""Confidence of pseudo labels: per pixel from the averaged softmax, per image, and the report's
list of the images to check first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from axondeepsynth import report
from axondeepsynth.pipeline.evaluate import confidence, image_confidence


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
    text = report.to_check([record], n=2)
    assert "tutorship: b (fold 0: 0.610, axon Dice 0.400), c (fold 0: 0.720)" in text
    assert report.to_check([json.loads(json.dumps({**record, "strategies": {}}))]) == ""


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
    with_labels, without = report.recommend([_record(True)]), report.recommend([_record(False)])
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
