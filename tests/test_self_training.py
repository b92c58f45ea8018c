"""self_training: a proxy trained on U's own images with a teacher strategy's pseudo labels,
scored on the U images its fold held out, beside its teacher, and kept as the run's model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_cfg, overridden
from test_segment import RUN

from axondeepsynth import findings, translator_check
from axondeepsynth.data import images
from axondeepsynth.data.labels import IGNORE, from_axonmyelin
from axondeepsynth.errors import ConfigError


def test_self_training_learns_from_its_teacher_and_is_kept(tmp_path: Path, monkeypatch) -> None:
    from axondeepsynth.pipeline import run_stages, train_segmenter

    seen = {}
    real = train_segmenter.pseudo_labelled

    def spy(run, teacher):
        samples, origin = real(run, teacher)
        seen.update({s.key: s.labels for s in samples})
        return samples, origin

    monkeypatch.setattr(train_segmenter, "pseudo_labelled", spy)
    strategies = "segmenter.strategies=[direct,self_training]"
    unsure = "self_train.min_confidence=0.6"
    cfg = compose_cfg(
        *overridden(RUN, strategies, unsure, "export.model=recommended"), tmp=tmp_path
    )
    run_stages(cfg)
    out = Path(cfg.paths.output_dir)
    results = json.loads((out / "results.json").read_text())
    student = results["strategies"]["self_training"]
    assert student["teacher"] == "direct"  # the recommended one, here the only candidate
    split = json.loads((out / "seg" / "U_pseudo" / "fold1" / "split.json").read_text())
    fold = student["folds"]["1"]
    assert set(fold["per_image"]) == set(split["val"]) and set(fold["teacher"]) == {
        "axon",
        "myelin",
    }
    # it trained on the teacher's pseudo labels of the first fold, at the working scale, but
    # for the pixels its teacher was less than 0.6 sure of
    assert len(seen) == 4
    for key, labels in seen.items():
        written = out / "pseudo_labels" / "direct" / "fold1"
        mask = images.read_mask(written / f"{key}_seg-axonmyelin.png")
        teacher = from_axonmyelin(mask)[::2, ::2]  # phantoms at 0.04 µm/px, worked at 0.08
        unsure = images.read_mask(written / f"{key}_confidence.png")[::2, ::2] < 0.6 * 255
        left_out = labels == IGNORE
        assert 0 < left_out.mean() < 1 and (left_out == unsure).mean() > 0.95
        assert (labels == teacher)[~left_out].mean() > 0.9
    assert "self_training" in findings.self_training([results | {"path": str(out)}])
    assert json.loads((out / "model" / "model.json").read_text())["strategy"] == "self_training"
    assert not np.isnan(fold["mean"]["axon"])


def test_self_training_needs_a_teacher_in_the_run() -> None:
    with pytest.raises(ConfigError, match="self_train.teacher"):
        compose_cfg(
            "+experiment=demo",
            "segmenter.strategies=[tutorship,self_training]",
            "self_train.teacher=adaptation",
        )
    with pytest.raises(ConfigError, match="(?s)segmenter.k.*held-out"):
        compose_cfg(
            "+experiment=demo", "segmenter.strategies=[direct,self_training]", "segmenter.k=1"
        )
    for value in ("1.0", "-0.1"):
        with pytest.raises(ConfigError, match="self_train.min_confidence"):
            compose_cfg("+experiment=demo", f"self_train.min_confidence={value}")


def test_the_default_teacher_is_the_recommended_strategy(tmp_path: Path, monkeypatch) -> None:
    """Three candidates: the teacher is the one the recommendation names from the others'
    agreement, and the kept model is the self-trained one (this one-epoch translator would fail
    its check: its bounds are lifted here, test_translator_check.py tests them)."""
    from axondeepsynth.pipeline import run_stages

    monkeypatch.setattr(translator_check, "SEPARATION_MIN", 0.0)
    monkeypatch.setattr(translator_check, "GAP_MAX", 1.0)

    strategies = "segmenter.strategies=[direct,tutorship,adaptation,self_training]"
    cfg = compose_cfg(*overridden(RUN, strategies, "export.model=recommended"), tmp=tmp_path)
    objective = run_stages(cfg)
    results = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())
    others = {k: v for k, v in results["strategies"].items() if k != "self_training"}
    assert all("agreement" in body["folds"]["1"] for body in others.values())
    teacher = findings.recommended([{"strategies": others}])
    assert teacher is not None and results["strategies"]["self_training"]["teacher"] == teacher
    # a sweeper maximises the teacher's agreement, never a Dice against U's labels
    assert objective == pytest.approx(others[teacher]["folds"]["1"]["agreement"])
    assert (
        json.loads((Path(cfg.paths.output_dir) / "model" / "model.json").read_text())["strategy"]
        == "self_training"
    )
