"""The run directory is checked before Hydra writes its config and log file there, so an
unwritable or full disk stops the run with one line, not a traceback from Hydra's logging."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from axondeepsynth.errors import AxonDeepSynthError


def check_output_dir(out: Path, min_free_gb: float, key: str = "hydra.run.dir") -> None:
    """Fail before any work if the run directory (set by `key`) cannot be written or its disk
    is nearly full."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise AxonDeepSynthError(
            f"{out}: cannot write the run directory ({err.strerror})\n"
            f"  fix: pass {key}=/a/writable/folder"
        ) from None
    free_gb = shutil.disk_usage(out).free / 2**30
    if free_gb < min_free_gb:
        raise AxonDeepSynthError(
            f"{out}: only {free_gb:.1f} GB free, {min_free_gb} GB needed\n"
            f"  fix: free space, pick another {key}, or lower paths.min_free_gb"
        )


class CheckRunDir(Callback):
    """Hydra callback (conf/hydra/default.yaml): checks `hydra.run.dir`, or `hydra.sweep.dir`
    of a multirun, before Hydra creates it."""

    def _check(self, config: DictConfig, key: str) -> None:
        try:
            check_output_dir(Path(OmegaConf.select(config, key)), config.paths.min_free_gb, key)
        except AxonDeepSynthError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")
