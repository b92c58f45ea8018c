"""User-facing errors: each names the file at fault and how to fix it."""

from __future__ import annotations

from pathlib import Path


class AxonDeepSynthError(Exception):
    """An error the user can fix; entry points print it without a traceback."""


class Terminated(BaseException):
    """SIGTERM outside training: finished files are kept and the re-run resumes from them."""


class DataError(AxonDeepSynthError):
    """A dataset file is missing, unreadable or inconsistent."""

    def __init__(self, path: Path | str, problem: str, fix: str = "") -> None:
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{path}: {problem}" + (f"\n  fix: {fix}" if fix else ""))


class ConfigError(AxonDeepSynthError):
    """A configuration value is missing or out of range."""

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key = key
        super().__init__(f"config '{key}': {problem}" + (f"\n  fix: {fix}" if fix else ""))


class NumericalError(AxonDeepSynthError):
    """A loss became NaN or infinite; training stops before the bad step is applied or saved."""


def check_finite(terms: dict, step: int, epoch: int) -> None:
    """Raise NumericalError naming the first non-finite loss term (a dict of scalar tensors)."""
    for name, value in terms.items():
        if not bool(value.isfinite()):
            raise NumericalError(
                f"loss term {name} = {value.item()} at batch {step} (epoch {epoch}); the update "
                "was not applied and no checkpoint was written from it\n  fix: lower the learning "
                "rate or use 32-bit precision, then resume with resume=last"
            )
