"""Config schema, entry points and the inspect CLI as a user meets them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, compose_cfg
from omegaconf import OmegaConf

from axondeepsynth import moved
from axondeepsynth.config import Config
from axondeepsynth.errors import ConfigError
from axondeepsynth.inspect import main as inspect_main


def run_module(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("override", "new"),
    [
        ("model.lr_g=1e-4", "model.lr_g is now translator.train.lr_g"),
        ("model=cyclegan", "pass translator=cyclegan"),
        ("+seg.k=3", "seg.k is now segmenter.k"),
        ("seg.net.tta_flips=false", "is now segmenter.predict.tta_flips"),
        ("seg.net.unet.depth=4", "is now segmenter.net.unet.depth"),
        ("data.tile_size=64", "is now translator.data.tile_size"),
        ("trainer.max_epochs=3", "is now translator.train.max_epochs"),
        ("translator.checkpoint=best", "is now translator.sample.which"),
        ("seg.self_train_from=direct", "is now self_train.teacher"),
        ("ckpt_path=last", "ckpt_path is now resume"),
    ],
)
def test_a_key_of_the_old_layout_is_refused_with_its_new_place(override: str, new: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(new)):
        compose_cfg(override)


def test_every_new_place_of_an_old_key_is_in_the_schema() -> None:
    schema = OmegaConf.structured(Config)
    for old, new in moved.KEYS.items():
        for place in re.findall(r"[a-z_0-9]+(?:\.[a-z_0-9]+)+", new):
            assert OmegaConf.select(schema, place, default="absent") != "absent", (old, place)
    for old, new in moved.GROUPS.items():
        assert (REPO / "conf" / new).is_dir() and not (REPO / "conf" / old).exists()


def test_an_experiment_file_of_the_old_layout_is_refused_naming_it(tmp_path: Path) -> None:
    old = tmp_path / "experiment" / "mine.yaml"
    old.parent.mkdir()
    old.write_text("# @package _global_\ndefaults:\n  - override /model: cyclegan_tiny\n")
    with pytest.raises(ConfigError, match="mine.yaml: the config group model is now translator"):
        moved.refuse_overrides(["+experiment=mine"], tmp_path)
    old.write_text("# @package _global_\nseg:\n  net:\n    tta_flips: false\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: seg.net.tta_flips is now segmenter.predict"):
        moved.refuse_overrides(["+experiment=mine"], tmp_path)
    old.write_text("# @package _global_\ndata:\n  tile_size: 64\n")
    with pytest.raises(ConfigError, match=r"data.tile_size is now translator.data.tile_size"):
        moved.refuse_overrides(["+experiment=mine"], tmp_path)
    for recipe in (REPO / "conf" / "experiment").glob("*.yaml"):  # ours are of the new layout
        moved.refuse_file(recipe)


def test_the_entry_point_refuses_an_old_key_in_one_line() -> None:
    result = run_module("axondeepsynth.run", "+experiment=demo", "seg.fold=all")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "seg.fold is now segmenter.fold" in result.stderr


def test_experiments_compose_and_validate() -> None:
    cfg = compose_cfg("+experiment=demo")
    assert cfg.task_name == "demo" and cfg.data.labeled.phantom.look == "TEM"
    assert cfg.data.unlabeled.phantom.look == "SEM" and cfg.data.unlabeled.root.endswith("SEM")
    for target in ("sem", "bf", "tem_macaque"):
        for strategy in ("tutorship", "adaptation", "direct"):
            cfg = compose_cfg(
                f"+experiment={target}_{strategy}", "data.labeled.root=/l", "data.unlabeled.root=/u"
            )
            assert (
                cfg.segmenter.strategies == [strategy] and cfg.task_name == f"{target}_{strategy}"
            )
            assert ("translate" in cfg.stages) == (strategy != "direct")


TRAIN = "stages=[prepare,train_translator]"  # the translator's config is checked if it trains


def test_batch_size_must_split_into_stddev_groups() -> None:
    with pytest.raises(ConfigError) as err:
        compose_cfg("translator.train.batch_size=6", "translator.train.tiles_per_epoch=12", TRAIN)
    assert err.value.key == "translator.train.batch_size"
    compose_cfg("translator.train.batch_size=8", "translator.train.tiles_per_epoch=16", TRAIN)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("translator.sample.tile_overlap=200", "translator.sample.tile_overlap"),
        ("data.labeled.pixel_size=-1", "data.labeled.pixel_size"),
        ("stages=[prepare,fly]", "stages[1]"),
    ],
)
def test_validation_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        compose_cfg(override)
    assert err.value.key == key


def test_unknown_key_and_wrong_type_fail_at_compose() -> None:
    with pytest.raises(Exception, match="tile_sise"):
        compose_cfg("data.tile_sise=3")
    with pytest.raises(Exception, match="translator.data.tile_size"):
        compose_cfg("translator.data.tile_size=abc")


def test_help_lists_the_experiments() -> None:
    result = run_module("axondeepsynth.run", "--help")
    assert result.returncode == 0
    experiments = next(
        line for line in result.stdout.splitlines() if line.startswith("experiment:")
    )
    assert "demo" in experiments and "sem_tutorship" in experiments


@pytest.mark.e2e
def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    result = run_module(
        "axondeepsynth.run", "data=sem", "logger=none", f"paths.root_dir={tmp_path}"
    )
    assert result.returncode == 2
    assert "data.labeled.root" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_inspect_real_sem_json(shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    assert inspect_main([str(shared_data / "sem"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layout"] == "bids" and report["n_images"] == 8 and report["n_labelled"] == 8
    rat7 = next(i for i in report["images"] if i["subject"] == "sub-rat7")
    assert (rat7["width"], rat7["height"], rat7["dtype"]) == (2001, 2001, "uint8")
    assert rat7["pixel_size_um"] == 0.07 and 0 < rat7["label_fractions"]["axon"] < 1


def test_inspect_reports_problems(tiny_bids: Path, capsys: pytest.CaptureFixture) -> None:
    (tiny_bids / "sub-a" / "micr" / "sub-a_SEM.json").unlink()
    assert inspect_main([str(tiny_bids)]) == 1
    out = capsys.readouterr().out
    assert "no PixelSize" in out and "fix:" in out and "MISSING" in out


@pytest.mark.e2e
def test_demo_generates_and_reads_back_phantoms(tmp_path: Path) -> None:
    result = run_module(
        "axondeepsynth.run",
        "+experiment=demo",
        "stages=[prepare]",
        "logger=none",
        f"paths.root_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(next(tmp_path.glob("logs/demo/runs/*/data_summary.json")).read_text())
    assert summary["L"]["n_images"] == 8 and summary["L"]["n_labelled"] == 8
    assert summary["U"]["n_images"] == 8
    assert (tmp_path / "data/phantoms/SEM/dataset_description.json").is_file()
    # the generated BIDS dataset reads back through the same inspector as real data
    assert inspect_main([str(tmp_path / "data/phantoms/TEM"), "--json"]) == 0


@pytest.mark.e2e
def test_multirun_gives_each_job_its_own_directory(tmp_path: Path) -> None:
    result = run_module(
        "axondeepsynth.run",
        "-m",
        "stages=[prepare]",
        "seed=0,1",
        "logger=none",
        "data.cache=mmap",
        f"paths.root_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted(tmp_path.glob("logs/run/multiruns/*/[0-9]"))
    assert [j.name for j in jobs] == ["0", "1"]
    for job in jobs:
        assert json.loads((job / "data_summary.json").read_text())["L"]["n_images"] == 8
        assert len(list((job / "cache" / "L").glob("*.image.npy"))) == 8  # decoded once, mapped


def test_slurm_launcher_config_composes() -> None:
    result = run_module(
        "axondeepsynth.run", "hydra/launcher=slurm", "--cfg", "hydra", "-p", "hydra.launcher"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SlurmLauncher" in result.stdout and "requeue: true" in result.stdout


def test_unwritable_or_full_output_fails_before_work(tmp_path: Path) -> None:
    from axondeepsynth.errors import AxonDeepSynthError
    from axondeepsynth.run_dir import check_output_dir

    check_output_dir(tmp_path / "run", min_free_gb=0.0)
    with pytest.raises(AxonDeepSynthError, match="GB free"):
        check_output_dir(tmp_path / "run", min_free_gb=1e9)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AxonDeepSynthError, match="cannot write the run directory"):
        check_output_dir(blocker / "run", min_free_gb=0.0)


@pytest.mark.parametrize("multirun", [False, True])
def test_an_unwritable_run_dir_stops_in_one_line_before_hydra_logs_there(
    tmp_path: Path, multirun: bool
) -> None:
    blocker = tmp_path / "file"  # a path under a file: unwritable even for root
    blocker.write_text("")
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    result = run_module(
        "axondeepsynth.run",
        *(["-m"] if multirun else []),
        "+experiment=demo",
        "stages=[prepare]",
        "logger=none",
        f"paths.root_dir={tmp_path}",
        f"{key}={blocker}/run",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "NotADirectoryError" not in result.stderr
    assert f"{blocker}/run: cannot write the run directory" in result.stderr
    assert f"fix: pass {key}=" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing generated before the stop


@pytest.mark.e2e
def test_a_rerun_into_a_run_directory_keeps_the_first_record(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"

    def prepare(val_images: int) -> None:
        done = subprocess.run(
            [
                sys.executable, "-m", "axondeepsynth.run", "+experiment=demo", "logger=none",
                "stages=[prepare]", f"paths.root_dir={tmp_path}", f"hydra.run.dir={run_dir}",
                f"translator.data.val_images={val_images}",
            ],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]

    prepare(1)
    first = (run_dir / ".hydra" / "config.yaml").read_text()
    prepare(2)
    assert (run_dir / ".hydra" / "config.yaml").read_text() == first
    (rerun,) = (run_dir / ".hydra").glob("rerun-*/config.yaml")
    assert "val_images: 2" in rerun.read_text() and "val_images: 1" in first
