"""Stage records: made once under a lock, refused across configurations, resumable."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from axondeepsynth.errors import AxonDeepSynthError
from axondeepsynth.pipeline.stage_dir import once


@dataclass
class Made:
    x: int


def _slow_stage(directory: str, log: str) -> None:
    def produce() -> Made:
        with open(log, "a") as f:
            f.write("trained\n")
        time.sleep(1.5)
        return Made(7)

    assert once(Path(directory), "key-a", produce, Made) == Made(7)


def test_parallel_jobs_sharing_a_directory_produce_once(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    ctx = mp.get_context("spawn")
    jobs = [
        ctx.Process(target=_slow_stage, args=(str(tmp_path / "translator"), str(log)))
        for _ in range(3)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
    assert [job.exitcode for job in jobs] == [0, 0, 0]
    assert log.read_text() == "trained\n"
    record = json.loads((tmp_path / "translator" / "done.json").read_text())
    assert record == {"key": "key-a", "output": {"x": 7}}


def test_another_configuration_is_refused(tmp_path: Path) -> None:
    once(tmp_path, "key-a", lambda: Made(1), Made)
    assert once(tmp_path, "key-a", lambda: pytest.fail("redone"), Made) == Made(1)
    with pytest.raises(AxonDeepSynthError, match="(?s)another configuration.*sample.ckpt_path"):
        once(tmp_path, "key-b", lambda: Made(2), Made)


def test_partial_contents_of_another_configuration_are_refused(tmp_path: Path) -> None:
    def crash() -> Made:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        once(tmp_path, "key-a", crash, Made)
    with pytest.raises(AxonDeepSynthError, match="partial results of another configuration"):
        once(tmp_path, "key-b", lambda: Made(2), Made)
    assert once(tmp_path, "key-a", lambda: Made(1), Made) == Made(1)  # same config: redone


BROKEN = ["", '{"key": "key-a", "out', "{}", "[]", '{"key": 3}']


@pytest.mark.parametrize(
    "name, text",
    [("done.json", t) for t in [*BROKEN, '{"key": "key-a"}']]
    + [("started.json", t) for t in BROKEN],
)
def test_a_broken_record_is_one_line_and_removing_it_redoes_the_stage(
    tmp_path: Path, name: str, text: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(AxonDeepSynthError, match=f"(?s){name}.*remove it.*made again") as err:
        once(tmp_path, "key-a", lambda: Made(1), Made)
    assert "\n" in str(err.value) and len(str(err.value).splitlines()) == 2
    (tmp_path / name).unlink()
    assert once(tmp_path, "key-a", lambda: Made(1), Made) == Made(1)
