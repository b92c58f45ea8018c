"""Checks of a composed config before any work: ranges, cross-field rules, and that every
chosen stage and strategy has what it needs (each part checks its own: `validate_*` beside its
schema). A failed check names the key, the problem and the fix (`errors.ConfigError`)."""

from __future__ import annotations

import importlib.util

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from axondeepsynth import postprocess, strategies
from axondeepsynth.config import STAGES, Backend, Config
from axondeepsynth.data.config import validate_augment, validate_data, validate_domain
from axondeepsynth.errors import ConfigError
from axondeepsynth.schema import check
from axondeepsynth.training.config import validate_nnunet, validate_translator

TRANSLATE = "add translate to stages (a translator.dir of an earlier run is reused)"


def _roots_from_sets(cfg: DictConfig) -> None:
    """A domain given as `sets` needs no `root`: unset the mandatory placeholder."""
    data = cfg.get("data")
    for key in ("labeled", "unlabeled"):
        domain = data.get(key) if data is not None else None
        if domain is not None and domain.get("sets") and OmegaConf.is_missing(domain, "root"):
            domain.root = None


def validate(cfg: DictConfig | Config) -> Config:
    """Resolve and check a composed config; return it as the typed object."""
    if isinstance(cfg, DictConfig):
        _roots_from_sets(cfg)
    try:
        obj: Config = OmegaConf.to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    except MissingMandatoryValue as err:
        raise ConfigError(
            err.full_key,
            "is required but was not given",
            f"pass {err.full_key}=... on the command line",
        ) from None
    _validate_stages(obj)
    d = obj.data
    validate_domain(d.labeled, "data.labeled", obj.paths.data_dir)
    needs_u = {"train_translator", "translate", "evaluate"} & set(obj.stages)
    if needs_u or "oracle" in obj.seg.strategies:
        validate_domain(d.unlabeled, "data.unlabeled", obj.paths.data_dir)
    validate_data(d)
    for key, epochs in (
        ("trainer.max_epochs", obj.trainer.max_epochs),
        ("seg.max_epochs", obj.seg.max_epochs),
    ):
        check(epochs >= 1, key, f"must be >= 1, got {epochs}")
    _validate_translator(obj)
    _validate_segmentation(obj)
    return obj


def _validate_stages(obj: Config) -> None:
    """Known stages in pipeline order, each with what it needs made by an earlier one."""
    for i, stage in enumerate(obj.stages):
        check(
            stage in STAGES,
            f"stages[{i}]",
            f"unknown stage '{stage}'",
            f"use stages from {', '.join(STAGES)}",
        )
    order = [STAGES.index(stage) for stage in obj.stages]
    check(
        order == sorted(set(order)),
        "stages",
        f"{obj.stages} is not in pipeline order (or repeats a stage)",
        f"list them in the order {', '.join(STAGES)}",
    )
    for i, name in enumerate(obj.seg.strategies):
        check(
            name in strategies.STRATEGIES,
            f"seg.strategies[{i}]",
            f"unknown strategy '{name}'",
            f"use {', '.join(strategies.STRATEGIES)}",
        )
    chosen = [strategies.STRATEGIES[name] for name in obj.seg.strategies]
    stages, t = set(obj.stages), obj.translator
    made = set(t.directions) or {d for s in chosen for d in s.translations}

    def need(stage: str, before: str, why: str, fix: str) -> None:
        check(stage in stages, "stages", f"{before} {why}", fix)

    if "translate" in stages and not t.ckpt_path:
        need(
            "train_translator",
            "translate",
            "needs a translator",
            "add train_translator to stages, or pass translator.ckpt_path=...",
        )
    for s in chosen:  # the translations its training sets and its inputs come from
        trained_on = {strategies.TRAINING_SETS[t].translation for t in s.train_sets}
        shown = {strategies.INPUT_TRANSLATION[i] for _, i in s.models}
        for stage, needed in (("train_segmenter", trained_on), ("evaluate", shown)):
            for direction in sorted(d for d in needed if d) if stage in stages else ():
                what = {"l2u": "L->U", "u2l": "U->L"}[direction]
                need("translate", stage, f"for {s.name} needs the {what} translation", TRANSLATE)
                check(
                    direction in made,
                    "translator.directions",
                    f"leaves out {direction}, which {s.name} needs",
                    f"add {direction} or leave translator.directions empty",
                )
    if "evaluate" in stages:
        need(
            "train_segmenter",
            "evaluate",
            "needs the segmenters",
            "add train_segmenter to stages (finished folds are reused, not retrained)",
        )
    for stage, why in (
        ("self_train", "learns from its scores"),
        ("export", "keeps a model it scored"),
    ):
        if stage in stages:
            need("evaluate", stage, why, "add evaluate to stages (finished folds are reused)")
    if "evaluate" in stages and any(s.pseudo for s in chosen):
        need(
            "self_train",
            "self_training",
            "is trained after evaluate scores its teacher",
            "add self_train to stages, after evaluate",
        )


def _validate_segmentation(obj: Config) -> None:
    s = obj.seg
    check(s.k >= 1, "seg.k", f"must be >= 1, got {s.k}")
    postprocess.validate_config(s.postprocess, "seg.postprocess")
    check(
        s.backend != "nnunet" or importlib.util.find_spec("nnunetv2") is not None,
        "seg.backend",
        "nnunet needs nnU-Net v2, which is not installed",
        "pip install -e '.[nnunet]' (or keep seg.backend=lightning)",
    )
    check(
        s.export in (None, "recommended", *s.strategies),
        "seg.export",
        f"'{s.export}' is not one of this run's strategies",
        f"use recommended, null, or one of {', '.join(s.strategies)}",
    )
    runs = range(s.k) if s.fold == "all" else [s.fold]
    check(
        s.export_fold is None or s.export_fold in runs,
        "seg.export_fold",
        f"fold {s.export_fold} is not scored by this run (folds {list(runs)})",
        "pick one of them, or null for the first",
    )
    validate_nnunet(s.nnunet, "seg.nnunet")
    for name in s.strategies:
        check(
            not strategies.STRATEGIES[name].held_out or s.k >= 2,
            "seg.k",
            f"{name} is scored on held-out U images and needs k >= 2 folds",
            "set seg.k=2 or more",
        )
    teachers = [n for n in s.strategies if not strategies.STRATEGIES[n].held_out]
    check(
        "self_training" not in s.strategies
        or (s.self_train_from == "recommended" and teachers)
        or s.self_train_from in teachers,
        "seg.self_train_from",
        f"'{s.self_train_from}' cannot teach self_training in this run",
        f"use recommended or one of {', '.join(teachers) or 'direct, tutorship, ...'}, "
        "listed in seg.strategies",
    )
    check(
        0 <= s.self_train_min_confidence < 1,
        "seg.self_train_min_confidence",
        f"must be in [0, 1), got {s.self_train_min_confidence}",
        "softmax confidence of 3 classes lies in [1/3, 1]: try 0.6-0.9, or 0 to keep all",
    )
    check(
        s.self_train_min_confidence == 0 or s.backend == Backend.lightning,
        "seg.self_train_min_confidence",
        "only the Lightning proxy leaves unsure pixels out of its loss",
        "set seg.backend=lightning, or seg.self_train_min_confidence=0",
    )
    validate_augment(s.augment, "seg.augment")
    check(
        s.fold == "all" or (isinstance(s.fold, int) and 0 <= s.fold < s.k),
        "seg.fold",
        f"must be 'all' or a fold in 0..{s.k - 1}, got {s.fold!r}",
    )
    down = 2 ** (s.net.unet.depth - 1)
    tile, overlap = obj.seg_tiling()
    key = "seg.tile_size" if s.tile_size else "data.tile_size"
    check(
        0 <= 2 * overlap < tile,
        "seg.tile_overlap",
        f"must be in [0, tile/2), got {overlap} for tile {tile}",
    )
    check(
        tile % down == 0 and tile >= down,
        key,
        f"{tile} is not divisible by {down} (U-Net depth {s.net.unet.depth})",
        "pick a multiple of it or lower seg.net.unet.depth",
    )


def _validate_translator(obj: Config) -> None:
    """The translation stage's own checks, then those of the translator to train (imported
    here: the schema itself imports no torch). A given translator.ckpt_path is checked when
    it is loaded, before the first stage."""
    m, t = obj.model, obj.translator
    check(
        t.batch_size is None or t.batch_size >= 1,
        "translator.batch_size",
        f"{t.batch_size} tiles per batch",
        "use a positive number, or null for the device's default",
    )
    check(t.samples >= 1, "translator.samples", f"must be >= 1, got {t.samples}")
    check(t.restarts >= 0, "translator.restarts", f"must be >= 0, got {t.restarts}")
    validate_translator(m, "model")
    check(
        t.precision in ("32", "bf16"),
        "translator.precision",
        f"unknown precision '{t.precision}'",
        "use 32 or bf16",
    )
    check(
        obj.trainer.num_nodes == 1,
        "trainer.num_nodes",
        f"{obj.trainer.num_nodes} nodes: the pipeline runs once and spawns each training stage's "
        "ranks on this node",
        "use one node with several devices (trainer=ddp)",
    )
