"""What the stages of one run share: the config, the run directory, decoded domains, and the
typed outputs each stage leaves for the next."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from axondeepsynth.config import Config
from axondeepsynth.data import images
from axondeepsynth.data.config import DatasetConfig, DomainConfig
from axondeepsynth.data.domain import load_domain
from axondeepsynth.data.labels import from_axonmyelin
from axondeepsynth.data.records import Sample
from axondeepsynth.strategies import STRATEGIES, Strategy, shown_translations

Domain = Literal["L", "U"]
# what a strategy is scored with: one fold's proxies, or every fold's averaged
# (segmenter.predict.ensemble)
ENSEMBLE = "ensemble"
Part = int | Literal["ensemble"]
SOURCE: dict[str, Domain] = {"l2u": "L", "u2l": "U"}  # the domain a translation starts from


@dataclass
class TranslatorCheckpoints:
    """Stage train_translator: the final EMA weights and the best by translator.train.monitor."""

    last: str
    best: str
    metrics: dict[str, float] = field(default_factory=dict)  # validation, after training
    untrained: dict[str, float] = field(default_factory=dict)  # validation, before
    seed: int | None = None  # the seed it was trained with (translator.restarts: another)
    root: str = ""  # its directory, where its translations go too ('': the run's default)


@dataclass
class Translation:
    """Stage translate, one direction: the written dataset(s) and each source image's file."""

    root: str
    roots: list[str]  # one per dataset of the source domain, named like it
    checkpoint: str
    sampler: str
    files: dict[str, str]  # sample key -> translated image
    # translator.sample.samples > 1: the other draws
    draws: list[dict[str, str]] = field(default_factory=list)

    def images(self, key: str) -> list[str]:
        """Every draw of one source image's translation, the first first."""
        return [self.files[key], *(d[key] for d in self.draws)]


@dataclass
class SegmenterCheckpoints:
    """Stage train_segmenter, one training set and fold."""

    last: str
    best: str  # by the fold's validation Dice
    val: dict[str, float] = field(default_factory=dict)


@dataclass
class NnUNetDataset:
    """A training set as an nnU-Net dataset, planned and preprocessed (segmenter.backend=nnunet)."""

    name: str  # Dataset501_<training set>
    plans: str  # the plans identifier its planner wrote


@dataclass
class Scores:
    """Stages evaluate and self_train: what `results.json` holds, and the per-axon
    morphometrics behind it (of each strategy's folds' pseudo labels, and of U's own labels by
    image)."""

    results: dict
    fibres: dict[str, list[dict]] = field(default_factory=dict)
    truth: dict[str, list[dict]] = field(default_factory=dict)


@dataclass
class Outputs:
    translator: TranslatorCheckpoints | None = None
    translations: dict[str, Translation] = field(default_factory=dict)  # by direction
    segmenters: dict[tuple[str, int], SegmenterCheckpoints] = field(default_factory=dict)
    # translators trained and set aside, each {"seed", "dir", "label_separation"}, by restarts
    set_aside: list[dict] = field(default_factory=list)
    scores: Scores | None = None
    # what a Hydra sweeper maximises: the translator's monitor, then the recommended
    # strategy's agreement (never U's labels)
    objective: float | None = None


@dataclass
class Run:
    cfg: Config
    out: Path
    outputs: Outputs = field(default_factory=Outputs)
    _samples: dict[str, list[Sample]] = field(default_factory=dict, repr=False)

    @property
    def translator_dir(self) -> Path:
        """Where the translator and its translations live (shared by a sweep's jobs if set)."""
        chosen = self.outputs.translator
        if chosen is not None and chosen.root:  # a restart's (translator.restarts)
            return Path(chosen.root)
        return self.default_translator_dir

    @property
    def default_translator_dir(self) -> Path:
        chosen = self.cfg.translator.sample.dir
        return Path(chosen) if chosen else self.out / "translator"

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
        seg = self.cfg.segmenter
        return list(range(seg.k)) if seg.fold == "all" else [int(seg.fold)]

    @property
    def strategies(self) -> list[Strategy]:
        return [STRATEGIES[name] for name in self.cfg.segmenter.strategies]

    def ensembled(self, strategy: Strategy) -> bool:
        """Whether `strategy` is also scored with its k folds' proxies averaged:
        segmenter.predict.ensemble, every fold run here, and a strategy that labels all of U (not
        only held-out images)."""
        seg = self.cfg.segmenter
        return seg.predict.ensemble and seg.fold == "all" and not strategy.held_out

    def parts(self, strategy: Strategy) -> list[Part]:
        """What `strategy` is scored with: each fold, then the ensemble where it has one."""
        return [*self.folds, *([ENSEMBLE] if self.ensembled(strategy) else [])]

    def fold_models(self, strategy: Strategy, part: Part) -> list[tuple[int, str, str]]:
        """(fold, training set, input) of each model `strategy` applies in `part`: its models of
        that fold, or of every fold for the ensemble."""
        folds = self.folds if part == ENSEMBLE else [part]
        return [(fold, t, shown) for fold in folds for t, shown in strategy.models]

    def handed_on(self, strategy: Strategy) -> Part:
        """The part whose pseudo labels and proxies a strategy hands on (to self_training, to
        the kept model): its ensemble where it has one, else the first fold run here."""
        return ENSEMBLE if self.ensembled(strategy) else self.folds[0]

    @property
    def directions(self) -> list[str]:
        """Translations to make: as configured, else those the strategies need."""
        if self.cfg.translator.sample.directions:
            return [str(d) for d in self.cfg.translator.sample.directions]
        needed = {d for s in self.strategies for d in s.translations}
        return [d for d in ("l2u", "u2l") if d in needed]

    def draws(self, direction: str) -> int:
        """Translations drawn per image: translator.sample.samples where a strategy segments
        them, one where they are only trained on."""
        shown = shown_translations(self.cfg.segmenter.strategies)
        return self.cfg.translator.sample.samples if direction in shown else 1

    # ---- the run's layout: every path a stage writes, in one place
    def translations_dir(self, name: str) -> Path:
        """One direction's translations (`l2u`, `u2l-draw1`, ...)."""
        return self.translator_dir / "translate" / name

    def proxy_dir(self, train_set: str, fold: int | None = None) -> Path:
        """One training set's proxy of a fold, or (no fold) its nnU-Net dataset."""
        return self.out / "seg" / train_set / ("nnunet" if fold is None else f"fold{fold}")

    @property
    def pseudo_label_root(self) -> Path:
        return self.out / "pseudo_labels"

    def pseudo_label_dir(self, strategy: str, part: Part) -> Path:
        return self.pseudo_label_root / strategy / part_name(part)

    @property
    def results_file(self) -> Path:
        return self.out / "results.json"

    @property
    def model_dir(self) -> Path:
        """The kept model (`segment` applies it)."""
        return self.out / "model"

    @property
    def overlay_dir(self) -> Path:
        return self.out / "overlays"

    @property
    def truth_dir(self) -> Path:
        """Morphometrics of U's own labels."""
        return self.out / "morphometrics_truth"

    def pseudo_labels(self, strategy: str, part: Part, key: str) -> np.ndarray:
        """The label map evaluate wrote for one U image by a strategy's fold or ensemble
        (stored size)."""
        path = self.pseudo_label_dir(strategy, part) / f"{key}_seg-axonmyelin.png"
        return from_axonmyelin(images.read_mask(path))

    def pseudo_confidence(self, strategy: str, part: Part, key: str) -> np.ndarray:
        """Its models' confidence in each pixel of those labels, in [0, 1]."""
        return images.read_mask(self.confidence_file(strategy, part, key)) / np.float32(255)

    def confidence_file(self, strategy: str, part: Part, key: str) -> Path:
        return self.pseudo_label_dir(strategy, part) / f"{key}_confidence.png"

    def domain_config(self, which: Domain) -> DomainConfig:
        return self.cfg.data.labeled if which == "L" else self.cfg.data.unlabeled

    def domain(self, which: Domain, native: bool = False) -> list[Sample]:
        """A domain's samples, decoded once per run: at the common pixel size, or as stored."""
        cfg = self.domain_config(which)
        if native:  # every dataset as stored, whatever its own scale
            sets = [replace(d, scale=1.0) for d in cfg.sets]
            return self._load(f"{which}-native", replace(cfg, scale=1.0, sets=sets))
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


def part_name(part: Part) -> str:
    """`fold<k>` or `ensemble`: a part's folder and file-name tag."""
    return part if part == ENSEMBLE else f"fold{part}"
