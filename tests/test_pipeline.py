"""The whole pipeline as users run it: a tiny 2-fold sweep end to end, then the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO

from axondeepsynth import findings
from axondeepsynth.training.proxy import resized

TINY = [
    "translator.data.tile_size=32",
    "translator.sample.tile_overlap=8",
    "segmenter.data.tile_size=32",
    "segmenter.predict.tile_overlap=8",
    "translator.train.tiles_per_epoch=8",
    "translator.train.batch_size=4",
    "translator.data.val_tiles_per_image=1",
    "segmenter.data.val_tiles_per_image=1",
    "translator.train.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "segmenter.train.max_epochs=1",
    "segmenter.train.tiles_per_epoch=8",
    "segmenter.k=2",
    "segmenter.net.unet.depth=3",
    "logger=csv",
]


@pytest.mark.e2e
def test_two_fold_sweep_end_to_end(tmp_path: Path) -> None:
    shared = tmp_path / "shared_translator"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "axondeepsynth.run",
            "-m",
            "+experiment=demo",
            "segmenter.fold=0,1",
            f"translator.sample.dir={shared}",
            f"paths.root_dir={tmp_path}",
            *TINY,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(tmp_path.glob("logs/demo/multiruns/*/[0-9]"))
    assert len(jobs) == 2
    # the translator is trained once and reused by the second fold
    assert "reusing" in (jobs[1] / "demo.log").read_text()
    assert len(list(shared.glob("checkpoints/*.ckpt"))) >= 1
    for fold, job in enumerate(jobs):
        results = json.loads((job / "results.json").read_text())
        assert set(results["strategies"]) == {"direct", "tutorship", "adaptation", "fused"}
        for strategy in results["strategies"].values():
            scores = strategy["folds"][str(fold)]
            assert len(scores["per_image"]) == 8  # every U phantom is labelled
            assert all(0 <= v <= 1 for d in scores["per_image"].values() for v in d.values())
        out = job / "pseudo_labels" / "tutorship" / f"fold{fold}"
        mask = cv2.imread(str(next(out.glob("*_seg-axonmyelin.png"))), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (256, 256)  # the stored size of U's images, not the working scale
        assert set(np.unique(mask)) <= {0, 127, 255}
        assert (out / "Dataset500_tutorship" / "dataset.json").is_file()
        # the worst and the best U image by axon Dice, for each strategy and fold
        names = sorted(p.name for p in (job / "overlays").glob(f"tutorship_fold{fold}_*.png"))
        assert [n.split("_")[2] for n in names] == ["best", "worst"]
        split = json.loads((job / "seg" / "L" / f"fold{fold}" / "split.json").read_text())
        assert split["fold"] == fold and not set(split["train"]) & set(split["val"])
    rows = findings.aggregate(findings.collect([jobs[0].parent]))
    assert {r["strategy"]: r["n_folds"] for r in rows} == {
        "direct": 2,
        "tutorship": 2,
        "adaptation": 2,
        "fused": 2,
    }


def test_probabilities_resized_before_argmax() -> None:
    probs = np.zeros((3, 2, 2), np.float32)
    probs[2, :, 1] = 1.0  # right column axon
    probs[0, :, 0] = 1.0
    labels = resized(probs, (4, 8)).argmax(0)
    assert labels.shape == (4, 8)
    assert (labels[:, :3] == 0).all() and (labels[:, 5:] == 2).all()


def test_inference_goes_one_tile_at_a_time_on_a_cpu_unless_configured(tmp_path: Path) -> None:
    from conftest import compose_cfg

    from axondeepsynth.pipeline.context import Run

    run = Run(compose_cfg("+experiment=demo", tmp=tmp_path), tmp_path / "run")  # trainer=cpu
    assert run.device == "cpu"
    assert run.tiles_per_pass(None) == 1 and run.tiles_per_pass(6) == 6


def test_translation_resumes_after_a_crash_without_redoing_images(
    tmp_path: Path, monkeypatch
) -> None:
    """A crash at image 4 of 6: the re-run translates images 4-6 only and keeps 1-3 untouched."""
    from conftest import compose_cfg, saved_translator

    from axondeepsynth.pipeline import translate
    from axondeepsynth.pipeline.context import Run

    cfg = compose_cfg(
        "+experiment=demo",
        "translator=syndiff_tiny",
        "translator.data.tile_size=32",
        "translator.sample.tile_overlap=8",
        "segmenter.data.tile_size=32",
        "segmenter.predict.tile_overlap=8",
        "translator.sample.directions=[l2u]",
        "segmenter.strategies=[tutorship]",  # which needs l2u only
        "data.labeled.phantom.n_images=6",
        "translator.sample.sampler=resnet",
        tmp=tmp_path,
    )
    ckpt = saved_translator(cfg.translator.module(), tmp_path / "t.ckpt", tile=32)
    cfg.translator.sample.ckpt_path = str(ckpt)
    calls, real = [], translate.translate_sample

    def crashing(*args, **kwargs):
        calls.append(args[1].name)
        if len(calls) == 4:
            raise RuntimeError("node lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(translate, "translate_sample", crashing)
    run = Run(cfg, tmp_path / "run")
    with pytest.raises(RuntimeError, match="node lost"):
        translate.run(run)
    written = sorted((run.translator_dir / "translate" / "l2u").rglob("sub-*_SEM.png"))
    stamps = {p: p.stat().st_mtime_ns for p in written}
    assert len(written) == 3 and not (run.translator_dir / "translate/l2u/done.json").exists()
    calls.clear()
    rerun = Run(cfg, tmp_path / "run")
    translate.run(rerun)
    out = rerun.outputs.translations["l2u"]
    assert len(calls) == 3 and len(out.files) == 6
    assert all(p.stat().st_mtime_ns == stamps[p] for p in written)
    assert all(Path(f).is_file() for f in out.files.values())


def test_draws_differ_repeat_per_seed_and_keep_the_first(tmp_path: Path, monkeypatch) -> None:
    """translator.sample.samples=3 with the diffusive sampler: three different translations of
    each U image, the same ones on a re-run into a new directory, the first one as with one draw;
    the L->U translation that is only trained on is drawn once. The sampler is replaced by
    noise from its seed (an untrained SynDiff's draws differ by less than 8 bits)."""
    from dataclasses import replace

    from conftest import compose_cfg, saved_translator

    from axondeepsynth.data.images import read_image
    from axondeepsynth.pipeline import translate
    from axondeepsynth.pipeline.context import Run

    def noise(module, sample, direction, tile, overlap, batch, sampler, seed, *args, **kw):
        image = np.random.default_rng(seed).random(sample.image.shape, np.float32)
        return replace(sample, image=image)

    monkeypatch.setattr(translate, "translate_sample", noise)

    def translated(samples: int, name: str):
        cfg = compose_cfg(
            "+experiment=demo",
            "translator=syndiff_tiny",
            "data.unlabeled.phantom.n_images=3",
            "data.labeled.phantom.n_images=2",
            "segmenter.strategies=[tutorship,adaptation]",
            f"translator.sample.samples={samples}",
            tmp=tmp_path,
        )
        cfg.translator.sample.ckpt_path = str(ckpt)
        run = Run(cfg, tmp_path / name)
        translate.run(run)
        return run.outputs.translations

    model = compose_cfg(
        "+experiment=demo", "translator=syndiff_tiny", tmp=tmp_path
    ).translator.module()
    ckpt = saved_translator(model, tmp_path / "t.ckpt", tile=32)
    first, again, single = translated(3, "a"), translated(3, "b"), translated(1, "c")
    assert len(first["u2l"].draws) == 2 and first["l2u"].draws == []
    drawn = set()
    for key in first["u2l"].files:
        draws = [read_image(f) for f in first["u2l"].images(key)]
        repeat = [read_image(f) for f in again["u2l"].images(key)]
        drawn |= {d.tobytes() for d in draws}
        assert all(np.array_equal(d, r) for d, r in zip(draws, repeat, strict=True))
        assert np.array_equal(draws[0], read_image(single["u2l"].files[key]))
    assert len(drawn) == 9  # 3 images x 3 draws, every one its own
    # more draws into the directory of one: the first is kept, not refused or redone
    first_file = Path(single["u2l"].files[key])
    stamp = first_file.stat().st_mtime_ns
    more = translated(3, "c")
    assert len(more["u2l"].draws) == 2 and first_file.stat().st_mtime_ns == stamp


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and skip not in p.parents
    }


@pytest.mark.e2e
def test_inputs_untouched_and_nothing_written_outside_the_run_directory(tmp_path: Path) -> None:
    """With the datasets already on disk, a whole run (W&B offline logger included) adds,
    changes or removes no file outside its run directory: not in the inputs, the working
    directory or HOME."""
    home, cwd, run_dir = tmp_path / "home", tmp_path / "cwd", tmp_path / "runs" / "one"
    home.mkdir()
    cwd.mkdir()
    command = [
        sys.executable,
        "-m",
        "axondeepsynth.run",
        "+experiment=demo",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
        *[o for o in TINY if not o.startswith("logger=")],
        "segmenter.fold=0",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env |= {"HOME": str(home), "PYTHONPATH": str(REPO)}
    prepare = subprocess.run(
        [*command, "stages=[prepare]", f"hydra.run.dir={tmp_path}/runs/prepare"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert prepare.returncode == 0, prepare.stderr[-2000:]
    before = _snapshot(tmp_path, run_dir)
    assert any(k.startswith("data/phantoms/TEM") for k in before)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "results.json").is_file() and any(run_dir.glob("**/wandb"))
    assert _snapshot(tmp_path, run_dir) == before


def test_each_run_of_a_process_keeps_wandb_files_in_its_own_directory(
    tmp_path: Path, monkeypatch
) -> None:
    """Jobs of a multirun share one process: each gets its own W&B directories, and a user's
    own setting is never replaced."""
    from axondeepsynth.pipeline.trainer import logger_files_in

    monkeypatch.delenv("WANDB_CACHE_DIR", raising=False)
    monkeypatch.setenv("WANDB_DATA_DIR", "/users/choice")
    for job in ("0", "1"):
        with logger_files_in(tmp_path / job):
            assert os.environ["WANDB_CACHE_DIR"] == str(tmp_path / job / "wandb" / "cache")
            assert os.environ["WANDB_DATA_DIR"] == "/users/choice"
    assert "WANDB_CACHE_DIR" not in os.environ
