"""Stage outputs that are made once: a completion record per stage directory, under a file lock.

A stage directory is complete only when its `done.json` exists; that record names the config it
was made from (a hash) and its artifacts, and `started.json` names the config its partial
contents come from. Re-runs reuse complete directories, resume incomplete ones of the same
config, and refuse a directory of another config. Parallel jobs of a sweep that share a directory
(e.g. one translator for five folds) wait on the lock instead of redoing the work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from axondeepsynth.data.images import write_text
from axondeepsynth.errors import AxonDeepSynthError

log = logging.getLogger(__name__)
RECORD = "done.json"


def config_hash(*parts: Any) -> str:
    """A short, stable hash of JSON-able config parts."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def is_launcher_child() -> bool:
    """A DDP rank that Lightning re-launched: rank 0 owns the lock and writes the record."""
    return any(int(os.environ.get(v, "0")) > 0 for v in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def _claim(directory: Path, key: str) -> None:
    """Mark `directory` as being filled for `key`, so partial files left by an interrupted run
    can be trusted (and resumed) by a re-run with the same configuration only."""
    started = directory / "started.json"
    if started.is_file() and json.loads(started.read_text())["key"] != key:
        raise AxonDeepSynthError(
            f"{directory} holds partial results of another configuration\n  fix: point this "
            "stage at a new directory or remove that one"
        )
    write_text(started, json.dumps({"key": key}))


def once(directory: Path, key: str, produce: Callable[[], dict], distributed: bool = False) -> dict:
    """Return the artifacts recorded in `directory`, producing them first if not complete.

    `distributed` stages (training) run on every DDP rank; the others run on rank 0 while
    re-launched ranks wait for its record.
    """
    directory.mkdir(parents=True, exist_ok=True)
    record = directory / RECORD
    if is_launcher_child():
        if record.is_file():
            return json.loads(record.read_text())["artifacts"]
        if distributed:
            return produce()  # rank 0 holds the lock and waits for this rank inside fit()
        log.info("waiting for rank 0 to complete %s", directory)
        while not record.is_file():
            time.sleep(2)
        return json.loads(record.read_text())["artifacts"]
    with FileLock(directory / ".lock"):
        if record.is_file():
            done = json.loads(record.read_text())
            if done["key"] != key:
                raise AxonDeepSynthError(
                    f"{directory} holds results of another configuration (hash {done['key']}, "
                    f"this run's is {key})\n  fix: point this stage at a new directory or remove "
                    "that one"
                )
            log.info("reusing %s (complete)", directory)
            return done["artifacts"]
        _claim(directory, key)
        artifacts = produce()
        write_text(record, json.dumps({"key": key, "artifacts": artifacts}, indent=2))
    return artifacts
