"""`axondeepsynth.report`: Dice mean ± std over folds from results.json files, and its outputs."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from axondeepsynth import findings, report
from axondeepsynth.errors import DataError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fold(axon: float, myelin: float, n_images: int = 3) -> dict:
    """One fold's scores: per-image Dice around the given means."""
    per_image = {f"sub-{i}_sample-1_SEM": {"axon": axon, "myelin": myelin} for i in range(n_images)}
    return {
        "per_image": per_image,
        "mean": {"axon": axon, "myelin": myelin},
        "std": {"axon": 0.0, "myelin": 0.0},
    }


def results(
    path: Path,
    strategies: dict[str, dict[str, dict]],
    config_hash: str = "9f2c1e0a",
    source: str = "TEM",
    target: str = "SEM",
    translation: dict | None = None,
    seed: int | None = None,
    recipe_hash: str | None = None,
) -> Path:
    """Write a results.json as the evaluate stage does; `strategies`: name -> fold -> scores."""
    path.mkdir(parents=True, exist_ok=True)
    body = {
        "task_name": "demo",
        "run_dir": str(path),
        "config_hash": config_hash,
        "seed": seed,
        "recipe_hash": recipe_hash,
        "source": source,
        "target": target,
        "data": {"L": {"root": "/l", "n_images": 8}, "U": {"root": "/u", "n_images": 8}},
        "translation": translation or {},
        "strategies": {name: {"folds": folds} for name, folds in strategies.items()},
    }
    (path / "results.json").write_text(json.dumps(body))
    return path / "results.json"


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A Hydra multirun dir: job 0 holds fold 0, job 1 holds fold 1."""
    root = tmp_path / "multirun" / "2026-01-01_00-00-00"
    results(
        root / "0",
        {"tutorship": {"0": fold(0.7, 0.6)}, "direct": {"0": fold(0.5, 0.4)}},
        translation={"val/cycle_l/ssim": 0.50, "val/cycle_l/ssim_std": 0.1, "val/cycle_l/l1": 0.2},
    )
    results(
        root / "1",
        {"tutorship": {"1": fold(0.8, 0.7)}, "direct": {"1": fold(0.6, 0.4)}},
        translation={"val/cycle_l/ssim": 0.54, "val/cycle_u/psnr": 18.0},
    )
    return root


def by_strategy(rows: list[dict]) -> dict[str, dict]:
    return {row["strategy"]: row for row in rows}


def test_aggregate_mean_and_sample_std_over_folds(sweep: Path) -> None:
    records = findings.collect([sweep])
    assert len(records) == 2 and all(Path(r["path"]).name == "results.json" for r in records)
    rows = findings.aggregate(records)
    assert [r["strategy"] for r in rows] == ["direct", "tutorship"]  # paper order
    tut = by_strategy(rows)["tutorship"]
    assert (tut["target"], tut["source"], tut["config_hash"]) == ("SEM", "TEM", "9f2c1e0a")
    assert tut["n_folds"] == 2 and tut["n_images"] == 3
    assert tut["axon_mean"] == pytest.approx(0.75)
    assert tut["axon_std"] == pytest.approx(math.sqrt(0.005))  # 0.0707, ddof=1
    assert tut["myelin_mean"] == pytest.approx(0.65)
    direct = by_strategy(rows)["direct"]
    assert direct["myelin_std"] == 0.0 and direct["axon_mean"] == pytest.approx(0.55)
    # translation: mean over files of SSIM/PSNR only (no _std, no l1)
    assert tut["translation"] == pytest.approx({"val/cycle_l/ssim": 0.52, "val/cycle_u/psnr": 18.0})


def test_single_fold_has_zero_std(tmp_path: Path) -> None:
    results(tmp_path / "run", {"adaptation": {"0": fold(0.9, 0.8, n_images=5)}})
    (row,) = findings.aggregate(findings.collect([tmp_path / "run"]))
    assert (row["n_folds"], row["n_images"], row["axon_std"]) == (1, 5, 0.0)


def test_duplicated_fold_counted_once(sweep: Path, tmp_path: Path, capsys) -> None:
    results(tmp_path / "rerun", {"tutorship": {"0": fold(0.7, 0.6)}})  # same hash, same numbers
    rows = findings.aggregate(findings.collect([sweep, tmp_path / "rerun"]))
    assert by_strategy(rows)["tutorship"]["n_folds"] == 2
    assert by_strategy(rows)["tutorship"]["axon_mean"] == pytest.approx(0.75)
    assert "warning" not in capsys.readouterr().err


def test_conflicting_duplicate_warns_and_keeps_first(sweep: Path, tmp_path: Path, capsys) -> None:
    results(tmp_path / "zz", {"tutorship": {"1": fold(0.2, 0.1)}})
    rows = findings.aggregate(findings.collect([sweep, tmp_path / "zz"]))
    tut = by_strategy(rows)["tutorship"]
    assert tut["n_folds"] == 2 and tut["axon_mean"] == pytest.approx(0.75)
    err = capsys.readouterr().err
    assert "warning" in err and "fold 1" in err and "tutorship" in err


def test_different_config_hashes_stay_apart(sweep: Path, tmp_path: Path) -> None:
    results(tmp_path / "other", {"tutorship": {"0": fold(0.3, 0.2)}}, config_hash="abcdef12")
    rows = findings.aggregate(findings.collect([sweep, tmp_path / "other"]))
    tut = [r for r in rows if r["strategy"] == "tutorship"]
    assert sorted((r["config_hash"], r["n_folds"]) for r in tut) == [
        ("9f2c1e0a", 2),
        ("abcdef12", 1),
    ]
    table = findings.markdown(rows)
    assert "tutorship [9f2c1e0a]" in table and "tutorship [abcdef12]" in table
    assert "| direct |" in table  # unambiguous strategies keep a plain label


def test_markdown_table(sweep: Path, tmp_path: Path) -> None:
    results(tmp_path / "bf", {"tutorship": {"0": fold(0.6, 0.5)}}, "1234abcd", target="BF")
    rows = findings.aggregate(findings.collect([sweep, tmp_path / "bf"]))
    table = findings.markdown(rows)
    lines = table.splitlines()
    assert "TEM → SEM axon Dice" in lines[0] and "TEM → BF myelin Dice" in lines[0]
    tutorship = next(line for line in lines if line.startswith("| tutorship |"))
    assert "0.750 ± 0.071" in tutorship and "0.650 ± 0.071" in tutorship
    assert "0.600 ± 0.000" in tutorship  # the BF column
    direct = next(line for line in lines if line.startswith("| direct |"))
    assert "–" in direct  # no direct run for BF
    assert "cycle_l SSIM 0.520" in table and "cycle_u PSNR 18.00 dB" in table


def test_table_for_logging_matches_csv(sweep: Path, tmp_path: Path) -> None:
    rows = findings.aggregate(findings.collect([sweep]))
    columns, data = findings.table_for_logging(rows)
    assert columns[: len(findings.COLUMNS)] == findings.COLUMNS and "val/cycle_l/ssim" in columns
    assert len(data) == 2 and all(len(line) == len(columns) for line in data)
    out = report.write_report(rows, tmp_path / "report")
    with (out / "table.csv").open() as f:
        parsed = list(csv.DictReader(f))
    assert list(parsed[0]) == columns
    tut = next(r for r in parsed if r["strategy"] == "tutorship")
    assert float(tut["axon_mean"]) == pytest.approx(0.75)
    assert float(tut["axon_std"]) == pytest.approx(math.sqrt(0.005))
    assert (int(tut["n_folds"]), int(tut["n_images"]), tut["config_hash"]) == (2, 3, "9f2c1e0a")


def test_write_report_files_and_chart(sweep: Path, tmp_path: Path) -> None:
    results(tmp_path / "bf", {"tutorship": {"0": fold(0.6, 0.5)}}, "1234abcd", target="BF")
    rows = findings.aggregate(findings.collect([sweep, tmp_path / "bf"]))
    out = report.write_report(rows, tmp_path / "report")
    assert out == tmp_path / "report"
    assert sorted(p.name for p in out.iterdir()) == [
        "dice.png",
        "summary.json",
        "table.csv",
        "table.md",
    ]
    png = (out / "dice.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 20_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 600 and height > 400
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["rows"]) == 3
    assert (out / "table.md").read_text() == findings.markdown(rows)


def test_never_overwrites(sweep: Path, tmp_path: Path, capsys) -> None:
    rows = findings.aggregate(findings.collect([sweep]))
    first = report.write_report(rows, tmp_path / "report")
    before = (first / "table.md").read_bytes()
    second = report.write_report(rows[:1], tmp_path / "report")
    assert second == tmp_path / "report-2"
    assert (first / "table.md").read_bytes() == before
    assert report.main([str(sweep), "--out", str(tmp_path / "report")]) == 0
    assert "report-3" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert report.write_report(rows, tmp_path / "empty") == tmp_path / "empty"


def test_main_prints_markdown_and_json(sweep: Path, capsys) -> None:
    assert report.main([str(sweep)]) == 0
    captured = capsys.readouterr()
    assert "0.750 ± 0.071" in captured.out
    assert (sweep / "report" / "dice.png").is_file()
    assert report.main([str(sweep), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert by_strategy(rows)["tutorship"]["axon_mean"] == pytest.approx(0.75)
    assert (sweep / "report-2" / "table.md").is_file()


def test_empty_dir_exits_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "run").mkdir()
    assert report.main([str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(tmp_path / "run") in err and "no results.json" in err and "fix:" in err
    assert not (tmp_path / "run" / "report").exists()


def test_corrupt_json_exits_2_naming_file(sweep: Path, capsys) -> None:
    bad = sweep / "1" / "results.json"
    bad.write_text('{"strategies": {"tutorship": ')
    assert report.main([str(sweep)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "corrupt JSON" in err


def test_wrong_schema_names_file(tmp_path: Path) -> None:
    path = results(tmp_path / "run", {"tutorship": {"0": {"mean": {"axon": 0.5}}}})
    with pytest.raises(DataError, match="lacks mean axon/myelin") as err:
        findings.collect([tmp_path / "run"])
    assert err.value.path == path


def test_imports_no_torch() -> None:
    code = "import sys, axondeepsynth.report; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_into_a_read_only_folder_is_one_line(sweep: Path, capsys, monkeypatch) -> None:
    def read_only(rows, out, records=None):
        raise PermissionError(13, "Permission denied", str(out / "table.md"))

    monkeypatch.setattr(report, "write_report", read_only)  # root ignores chmod: simulate it
    assert report.main([str(sweep), "--out", "/ro/report"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/ro/report/table.md" in err and "--out" in err


def test_morphometrics_are_averaged_over_folds_and_tabled(tmp_path: Path) -> None:
    def with_morph(scores: dict, gratio: float) -> dict:
        truth = {"gratio_mean_truth": 0.70, "axon_diam_mean_truth": 1.0}
        return scores | {
            "morphometrics": truth
            | {"gratio_mean": gratio, "gratio_error": abs(gratio - 0.7), "axon_diam_mean": 1.2}
            | {"axon_diam_error": 0.2, "gratio_wasserstein": 0.05, "axon_diam_wasserstein": None}
        }

    results(
        tmp_path / "run",
        {
            "tutorship": {
                "0": with_morph(fold(0.7, 0.6), 0.66),
                "1": with_morph(fold(0.8, 0.7), 0.72),
            }
        },
    )
    (row,) = findings.aggregate(findings.collect([tmp_path / "run"]))
    assert row["gratio_mean"] == pytest.approx(0.69) and row["gratio_error"] == pytest.approx(0.03)
    assert row["axon_diam_wasserstein"] is None
    table = findings.markdown([row])
    assert "| tutorship | 0.690 (0.700) | 0.030 | 0.050 | 1.200 (1.000) | 0.200 | – |" in table
    columns, data = findings.table_for_logging([row])
    assert data[0][columns.index("gratio_error")] == pytest.approx(0.03)


def test_the_two_backends_sit_side_by_side(tmp_path: Path) -> None:
    """One strategy scored with the Lightning proxy and with nnU-Net: two labelled rows."""
    results(tmp_path / "a", {"tutorship": {"0": fold(0.7, 0.6)}}, "aaaa")
    results(tmp_path / "b", {"tutorship": {"0": fold(0.8, 0.7)}}, "bbbb")
    record = json.loads((tmp_path / "b" / "results.json").read_text())
    (tmp_path / "b" / "results.json").write_text(json.dumps(record | {"backend": "nnunet"}))
    rows = findings.aggregate(findings.collect([tmp_path / "a", tmp_path / "b"]))
    assert [(r["strategy"], r["backend"]) for r in rows] == [
        ("tutorship", "lightning"),
        ("tutorship", "nnunet"),
    ]
    table = findings.markdown(rows)
    assert "| tutorship | 0.700" in table and "| tutorship (nnunet) | 0.800" in table


def test_runs_that_differ_by_their_seed_alone_show_their_spread(tmp_path: Path) -> None:
    for seed, axon in ((0, 0.70), (1, 0.76), (2, 0.73)):
        results(tmp_path / f"s{seed}", {"tutorship": {"0": fold(axon, 0.7)}},
                config_hash=f"c{seed}", seed=seed, recipe_hash="r")  # fmt: skip
    results(tmp_path / "other", {"tutorship": {"0": fold(0.2, 0.1)}},
            config_hash="c9", seed=1, recipe_hash="another")  # fmt: skip
    records = findings.collect([tmp_path])
    text = "".join(findings.notes(records))
    (line,) = [t for t in text.splitlines() if t.startswith("- TEM → SEM, tutorship")]
    assert "axon 0.730 (range 0.700-0.760)" in line and "over seeds 0, 1, 2" in line
    assert not any("0.200" in t for t in text.splitlines() if "over seeds" in t)  # one seed
    # one seed alone shows no spread
    assert "Spread over seeds" not in "".join(findings.notes(findings.collect([tmp_path / "s0"])))
