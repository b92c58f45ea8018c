"""`python -m axondeepsynth.run +experiment=NAME [key=value ...]`: the one entry point.

Composes the Hydra config, validates it, then runs the configured stages in the run directory.
Heavy imports (torch, Lightning) happen only after composition so `--help` stays fast.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from axondeepsynth.config import register, validate
from axondeepsynth.errors import AxonDeepSynthError

log = logging.getLogger("axondeepsynth")
register()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        config = validate(cfg)
        from axondeepsynth.pipeline import run_stages

        return run_stages(config)
    except AxonDeepSynthError as err:
        log.error("%s", err)
        sys.exit(2)
    except SystemExit as stop:  # Lightning turns SIGTERM into a bare SystemExit after saving
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if not isinstance(stop, SIGTERMException):
            raise
        log.warning(
            "stopped by SIGTERM: training state saved as checkpoints/interrupted.ckpt "
            "beside last.ckpt; re-run with ckpt_path=last hydra.run.dir=<this run>"
        )
        sys.exit(128 + 15)


if __name__ == "__main__":
    main()
