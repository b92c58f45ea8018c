"""What every part's config is built from: field roles, conversions, and the check that names
a key. Each part's schema lives beside the code it configures (`data/config.py`,
`training/config.py`, `training/translators/config.py`, `nets/config.py`, `postprocess.py`);
`config.py` composes them into the run's. Imports no torch.

Fields tagged `SPEED` (how fast, how verbose, where) are left out of the stage keys that decide
whether a stage's earlier output can be reused (`identity`); every other field of the config a
stage receives is in its key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, field, fields, is_dataclass
from typing import Any

from omegaconf import OmegaConf

from axondeepsynth.errors import ConfigError

SPEED = {"role": "speed"}  # changes speed or what is shown, never a number


def speed(default: Any) -> Any:
    return field(default=default, metadata=SPEED)


def identity(obj: Any) -> Any:
    """A config part as plain data for stage keys, without its SPEED fields (how fast or verbose
    a stage runs never changes its key)."""
    if is_dataclass(obj):
        return {
            f.name: identity(getattr(obj, f.name))
            for f in fields(obj)
            if f.metadata.get("role") != "speed"
        }
    if isinstance(obj, list | tuple):
        return [identity(v) for v in obj]
    if isinstance(obj, dict):
        return {k: identity(v) for k, v in obj.items()}
    return obj


def plain(obj: Any) -> dict:
    """A config dataclass as plain JSON types (enums as their values, tuples as lists): what
    checkpoints store, so that they load with torch.load(weights_only=True)."""
    return json.loads(json.dumps(asdict(obj)))


def structured(schema: type, values: dict) -> Any:
    """Build a config dataclass from a plain dict (e.g. a checkpoint's), checked by the schema."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))


def check(ok: bool, key: str, problem: str, fix: str = "") -> None:
    """Refuse a config value, naming its key, what is wrong and the fix."""
    if not ok:
        raise ConfigError(key, problem, fix)
