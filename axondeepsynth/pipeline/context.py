"""What the stages of one run share: the config, the run directory, artifacts, decoded domains."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from axondeepsynth.config import Config, DatasetConfig, DomainConfig
from axondeepsynth.data.domain import load_domain
from axondeepsynth.data.records import Sample

Domain = Literal["L", "U"]
STRATEGY_TRAIN_SET = {"direct": "L", "adaptation": "L", "tutorship": "L2U", "oracle": "U"}
STRATEGY_DIRECTION = {"tutorship": "l2u", "adaptation": "u2l"}


@dataclass
class Run:
    cfg: Config
    out: Path
    artifacts: dict[str, Any] = field(default_factory=dict)
    _samples: dict[str, list[Sample]] = field(default_factory=dict, repr=False)

    @property
    def translator_dir(self) -> Path:
        """Where the translator and its translations live (shared by a sweep's jobs if set)."""
        return Path(self.cfg.translator.dir) if self.cfg.translator.dir else self.out / "translator"

    @property
    def device(self) -> str:
        """Where inference runs: the GPU unless there is none or the trainer is on the CPU."""
        on_cpu = self.cfg.trainer.accelerator == "cpu" or not torch.cuda.is_available()
        return "cpu" if on_cpu else "cuda"

    def tiles_per_pass(self, configured: int | None) -> int:
        """Tiles per inference forward pass: as configured, else 8 on a GPU and 1 on a CPU
        (where batching measured slower: benchmarks/README.md)."""
        return configured or (8 if self.device == "cuda" else 1)

    @property
    def folds(self) -> list[int]:
        seg = self.cfg.seg
        return list(range(seg.k)) if seg.fold == "all" else [int(seg.fold)]

    @property
    def directions(self) -> list[str]:
        """Translations to make: as configured, else those the strategies need."""
        if self.cfg.translator.directions:
            return self.cfg.translator.directions
        needed = {STRATEGY_DIRECTION.get(s) for s in self.cfg.seg.strategies}
        return [d for d in ("l2u", "u2l") if d in needed]

    def domain_config(self, which: Domain) -> DomainConfig:
        return self.cfg.data.labeled if which == "L" else self.cfg.data.unlabeled

    def domain(self, which: Domain, native: bool = False) -> list[Sample]:
        """A domain's samples, decoded once per run: at the common pixel size, or as stored."""
        cfg = self.domain_config(which)
        if native:
            return self._load(f"{which}-native", replace(cfg, scale=1.0))
        return self._load(which, cfg)

    def dataset(self, roots: list[str], name: str) -> list[Sample]:
        """Datasets this pipeline wrote (e.g. a translation, one root per dataset of its source
        domain, named like them), already at the working scale."""
        if len(roots) == 1:
            return self._load(name, DomainConfig(root=str(roots[0]), scale=1.0))
        sets = [DatasetConfig(root=str(r), scale=1.0) for r in roots]
        return self._load(name, DomainConfig(root=None, sets=sets))

    def _load(self, name: str, cfg: DomainConfig) -> list[Sample]:
        if name not in self._samples:
            cache = self.out / "cache" if self.cfg.data.cache == "mmap" else None
            d = self.cfg.data
            self._samples[name] = load_domain(cfg, d.target_pixel_size, name, cache, d.resize)
        return self._samples[name]
