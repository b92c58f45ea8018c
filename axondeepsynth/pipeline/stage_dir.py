"""Stage outputs that are made once: a completion record per stage directory, under a file lock.

A stage directory is complete only when its `done.json` exists; that record names the config it
was made from (a key, `keys.py`) and the stage's typed output, and `started.json` names the key
its partial contents come from. Re-runs reuse complete directories, resume incomplete ones of
the same key, and refuse a directory of another key. Jobs of a sweep that share a directory
(e.g. one translator for five folds) wait on the lock instead of redoing the work.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from filelock import FileLock

from axondeepsynth.errors import AxonDeepSynthError
from axondeepsynth.io import write_text

log = logging.getLogger(__name__)
RECORD = "done.json"
R = TypeVar("R")
_FIX = (
    "point this stage at a new directory or remove that one (a translator trained by an earlier "
    "version is used as it is with translator.sample.ckpt_path=<its dir>/checkpoints/last.ckpt)"
)


def _read(record: Path) -> dict:
    """A stage record ({"key": ..., ...}), or one line naming it when it is not one (truncated,
    empty, edited): removing it redoes the stage."""
    try:
        kept = json.loads(record.read_text())
    except (ValueError, UnicodeDecodeError):
        kept = None
    if not isinstance(kept, dict) or not isinstance(kept.get("key"), str):
        raise AxonDeepSynthError(
            f"{record}: not a stage record (truncated or edited)\n  fix: remove it, and the "
            f"stage is made again in {record.parent}"
        )
    return kept


def _claim(directory: Path, key: str) -> None:
    """Mark `directory` as being filled for `key`, so partial files left by an interrupted run
    can be trusted (and resumed) by a re-run with the same configuration only."""
    started = directory / "started.json"
    if started.is_file() and _read(started)["key"] != key:
        raise AxonDeepSynthError(
            f"{directory} holds partial results of another configuration\n  fix: {_FIX}"
        )
    write_text(started, json.dumps({"key": key}))


def once(directory: Path, key: str, produce: Callable[[], R], record: type[R]) -> R:
    """The `record` kept in `directory`, produced first unless the directory is complete."""
    directory.mkdir(parents=True, exist_ok=True)
    done = directory / RECORD
    with FileLock(directory / ".lock"):
        if done.is_file():
            kept = _read(done)
            if kept["key"] != key:
                raise AxonDeepSynthError(
                    f"{directory} holds results of another configuration (key {kept['key']}, "
                    f"this run's is {key})\n  fix: {_FIX}"
                )
            log.info("reusing %s (complete)", directory)
            try:
                return record(**kept["output"])
            except (KeyError, TypeError):
                raise AxonDeepSynthError(
                    f"{done}: its output is not a {record.__name__}\n  fix: remove it, and the "
                    f"stage is made again in {directory}"
                ) from None
        _claim(directory, key)
        output = produce()
        write_text(done, json.dumps({"key": key, "output": asdict(output)}, indent=2))
    return output
