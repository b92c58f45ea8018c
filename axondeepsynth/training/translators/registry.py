"""The registry of translators, keyed by `translator.name`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from axondeepsynth.errors import ConfigError

T = TypeVar("T", bound=type)
TRANSLATORS: dict[str, type] = {}


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a translator available as `translator=<name>`."""

    def add(cls: T) -> T:
        TRANSLATORS[name] = cls
        return cls

    return add


def get(name: str) -> type:
    if name not in TRANSLATORS:
        raise ConfigError(
            "translator.name",
            f"unknown translator '{name}'",
            f"use one of {', '.join(TRANSLATORS)} (conf/translator/)",
        )
    return TRANSLATORS[name]


def check_draws(translator, sampler: str, samples: int) -> None:
    """Refuse `samples` translations per image that `sampler` cannot make differ: a translator
    lists its stochastic samplers in `stochastic` (none when it has no such attribute)."""
    if samples > 1 and sampler not in getattr(translator, "stochastic", ()):
        raise ConfigError(
            "translator.sample.samples",
            f"{samples} draws per image: the {sampler} sampler is deterministic",
            "set translator.sample.samples=1, or draw with a stochastic sampler "
            "(translator=syndiff, translator.sample.sampler=diffusive)",
        )
