"""What the stages of one run share: the config, the run directory, artifacts, decoded domains."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from axondeepsynth.config import Config, DomainConfig
from axondeepsynth.data.domain import load_domain
from axondeepsynth.data.records import Sample

Domain = Literal["L", "U"]


@dataclass
class Run:
    cfg: Config
    out: Path
    artifacts: dict[str, Any] = field(default_factory=dict)
    _domains: dict[str, list[Sample]] = field(default_factory=dict, repr=False)

    def domain_config(self, which: Domain) -> DomainConfig:
        return self.cfg.data.labeled if which == "L" else self.cfg.data.unlabeled

    def domain(self, which: Domain) -> list[Sample]:
        """The domain's samples at the common pixel size, decoded once per run."""
        if which not in self._domains:
            cache = self.out / "cache" if self.cfg.data.cache == "mmap" else None
            self._domains[which] = load_domain(
                self.domain_config(which),
                self.cfg.data.target_pixel_size,
                which,
                cache,
                need_labels=False,
            )
        return self._domains[which]
