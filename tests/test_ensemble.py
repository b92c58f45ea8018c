"""A run that scores every fold also averages each strategy's fold proxies (nnU-Net's way): its
pseudo labels, its Dice and the kept model are the ensemble's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_RUN, compose_cfg, overridden

from axondeepsynth import findings, segment
from axondeepsynth.data import images, layouts
from axondeepsynth.data.labels import from_axonmyelin
from axondeepsynth.data.records import load_sample
from axondeepsynth.pipeline.context import Run
from axondeepsynth.training import proxy
from axondeepsynth.training.segmenter import dice_per_class

RUN = overridden(
    TINY_RUN,
    "stages=[prepare,train_segmenter,evaluate,export]",
    "segmenter.strategies=[direct,oracle]",
    "segmenter.fold=all",
    "segmenter.train.max_epochs=2",
    "export.model=direct",
)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Run, dict]:
    from axondeepsynth.pipeline import run_stages

    cfg = compose_cfg(*RUN, tmp=tmp_path_factory.mktemp("run"))
    run_stages(cfg)
    run = Run(cfg, Path(cfg.paths.output_dir))
    return run, json.loads(run.results_file.read_text())


def test_the_ensemble_averages_the_folds_proxies(finished_run) -> None:
    run, results = finished_run
    direct = results["strategies"]["direct"]
    assert set(direct["folds"]) == {"0", "1"} and len(direct["ensemble"]["per_image"]) == 4
    assert "ensemble" not in results["strategies"]["oracle"]  # scored on held-out images only
    assert not (run.pseudo_label_root / "oracle" / "ensemble").exists()
    done = [json.loads((run.proxy_dir("L", f) / "done.json").read_text()) for f in (0, 1)]
    folds = [proxy.load(d["output"]["last"], "cpu") for d in done]
    tile, overlap = run.cfg.segmenter.data.tile_size, run.cfg.segmenter.predict.tile_overlap
    for i, sample in enumerate(run.domain("U", native=True)):
        image = run.domain("U")[i].image
        probs = np.mean([m.predict_proba(image, tile, overlap, 1) for m in folds], axis=0)
        expected = proxy.resized(probs, sample.image.shape).argmax(0)
        written = run.pseudo_labels("direct", "ensemble", sample.key)
        assert (written == expected).mean() > 0.999
        dice = dice_per_class(written, sample.labels)
        assert dice == pytest.approx(direct["ensemble"]["per_image"][sample.key], abs=1e-6)


def test_the_kept_model_is_the_ensemble(finished_run, tmp_path: Path) -> None:
    run, results = finished_run
    meta = json.loads((run.model_dir / "model.json").read_text())
    assert meta["fold"] == "ensemble"
    assert [m["checkpoint"] for m in meta["members"]] == ["L_fold0.ckpt", "L_fold1.ckpt"]
    out = tmp_path / "masks"
    u_root = Path(run.cfg.data.unlabeled.root)
    assert segment.main([str(run.model_dir), str(u_root), "--out", str(out)]) == 0
    per_image = results["strategies"]["direct"]["ensemble"]["per_image"]
    for record in layouts.scan(u_root).records:
        (found,) = out.rglob(f"{record.name}_seg-axonmyelin.png")
        dice = dice_per_class(from_axonmyelin(images.read_mask(found)), load_sample(record).labels)
        assert dice == pytest.approx(per_image[record.name], abs=1e-3)


def test_the_report_shows_the_ensemble_and_its_spread_over_seeds(finished_run) -> None:
    run, results = finished_run
    rows = findings.aggregate([results | {"path": str(run.results_file)}])
    ensemble = results["strategies"]["direct"]["ensemble"]["mean"]
    line = f"direct {ensemble['axon']:.3f} / {ensemble['myelin']:.3f}"
    assert line in findings.markdown(rows)
    other = json.loads(json.dumps(results))  # the same recipe with another seed
    other["seed"], other["config_hash"] = 1, "another"
    other["strategies"]["direct"]["ensemble"]["mean"]["axon"] = 0.123
    records = [results | {"path": "a"}, other | {"path": "b"}]
    spread = findings.seed_spread(findings.aggregate(records))
    (direct,) = [t for t in spread.splitlines() if ", direct (" in t]
    assert "folds' proxies averaged" in direct and "0.123" in direct
