"""`python -m axondeepsynth.run +experiment=NAME [key=value ...]`: the one entry point.

Composes the Hydra config, validates it, then runs the configured stages in the run directory.
Heavy imports (torch, Lightning) happen only after composition so `--help` stays fast.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import hydra
from omegaconf import DictConfig

from axondeepsynth.config import register
from axondeepsynth.errors import AxonDeepSynthError, Terminated
from axondeepsynth.moved import refuse_overrides
from axondeepsynth.validation import validate

log = logging.getLogger("axondeepsynth")
register()


def _resume_hint() -> str:
    from hydra.core.hydra_config import HydraConfig

    run_dir = HydraConfig.get().runtime.output_dir
    return f"to continue, re-run the same command with resume=last hydra.run.dir={run_dir}"


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        config = validate(cfg)
        from axondeepsynth.pipeline import run_stages
        from axondeepsynth.pipeline.trainer import on_sigterm

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_sigterm)
        return run_stages(config)
    except AxonDeepSynthError as err:
        log.error("%s", err)
        sys.exit(2)
    except SystemExit as stop:  # Lightning turns SIGTERM into a bare SystemExit after saving
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        from axondeepsynth.pipeline.trainer import Stop

        if not isinstance(stop, SIGTERMException):
            raise
        how = "Ctrl-C" if Stop.signum == signal.SIGINT else "SIGTERM"
        log.warning(
            f"stopped by {how}: training state saved as checkpoints/interrupted.ckpt beside "
            f"last.ckpt; {_resume_hint()}"
        )
        sys.exit(128 + Stop.signum)
    except KeyboardInterrupt:  # outside training, or a second Ctrl-C
        log.warning(f"stopped by Ctrl-C; finished files are kept; {_resume_hint()}")
        sys.exit(128 + signal.SIGINT)
    except Terminated:  # SIGTERM outside training
        log.warning(f"stopped by SIGTERM; finished files are kept; {_resume_hint()}")
        sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
    try:
        refuse_overrides(sys.argv[1:], Path(__file__).parents[1] / "conf")
    except AxonDeepSynthError as err:
        sys.exit(f"error: {err}")
    main()
