"""Checks of a composed config before any work: ranges, cross-field rules, and that every
chosen stage and strategy has what it needs (each part checks its own: `validate_*` beside its
schema). A failed check names the key, the problem and the fix (`errors.ConfigError`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from axondeepsynth import config, postprocess, strategies
from axondeepsynth.config import Backend, Config
from axondeepsynth.data.config import (
    validate_augment,
    validate_data,
    validate_domain,
    validate_overlap,
    validate_schedule,
    validate_tiles,
)
from axondeepsynth.errors import ConfigError
from axondeepsynth.schema import check
from axondeepsynth.training.config import validate_nnunet, validate_translator

# Lightning's precision names (Trainer(precision=...)) a training stage may take
TRAINING_PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")
TRANSLATE = "add translate to stages (a translator.sample.dir of an earlier run is reused)"


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
    if needs_u or "oracle" in obj.segmenter.strategies:
        validate_domain(d.unlabeled, "data.unlabeled", obj.paths.data_dir)
    validate_data(d)
    _validate_translator(obj)
    _validate_segmentation(obj)
    return obj


def _validate_stages(obj: Config) -> None:
    """Known stages in pipeline order, each with what it needs made by an earlier one."""
    for i, stage in enumerate(obj.stages):
        check(
            stage in config.STAGES,
            f"stages[{i}]",
            f"unknown stage '{stage}'",
            f"use stages from {', '.join(config.STAGES)}",
        )
    order = [config.STAGES.index(stage) for stage in obj.stages]
    check(
        order == sorted(set(order)),
        "stages",
        f"{obj.stages} is not in pipeline order (or repeats a stage)",
        f"list them in the order {', '.join(config.STAGES)}",
    )
    for i, name in enumerate(obj.segmenter.strategies):
        check(
            name in strategies.STRATEGIES,
            f"segmenter.strategies[{i}]",
            f"unknown strategy '{name}'",
            f"use {', '.join(strategies.STRATEGIES)}",
        )
    chosen = [strategies.STRATEGIES[name] for name in obj.segmenter.strategies]
    stages, t = set(obj.stages), obj.translator.sample
    made = set(t.directions) or {d for s in chosen for d in s.translations}

    def need(stage: str, before: str, why: str, fix: str) -> None:
        check(stage in stages, "stages", f"{before} {why}", fix)

    if "translate" in stages and not t.ckpt_path:
        need(
            "train_translator",
            "translate",
            "needs a translator",
            "add train_translator to stages, or pass translator.sample.ckpt_path=...",
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
                    "translator.sample.directions",
                    f"leaves out {direction}, which {s.name} needs",
                    f"add {direction} or leave translator.sample.directions empty",
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
    s, p = obj.segmenter, obj.segmenter.predict
    check(s.k >= 1, "segmenter.k", f"must be >= 1, got {s.k}")
    check(
        s.fold == "all" or (isinstance(s.fold, int) and 0 <= s.fold < s.k),
        "segmenter.fold",
        f"must be 'all' or a fold in 0..{s.k - 1}, got {s.fold!r}",
    )
    t = s.train
    validate_schedule(t.batch_size, t.tiles_per_epoch, t.max_epochs, "segmenter.train")
    validate_tiles(s.data, "segmenter.data")
    validate_augment(s.data.augment, "segmenter.data.augment")
    validate_overlap(p.tile_overlap, s.data.tile_size, "segmenter.predict.tile_overlap")
    down = 2 ** (s.net.unet.depth - 1)
    check(
        s.data.tile_size % down == 0,
        "segmenter.data.tile_size",
        f"{s.data.tile_size} is not divisible by {down} (U-Net depth {s.net.unet.depth})",
        "pick a multiple of it or lower segmenter.net.unet.depth",
    )
    postprocess.validate_config(p.postprocess, "segmenter.predict.postprocess")
    check(
        p.precision in ("32", "bf16"),
        "segmenter.predict.precision",
        f"unknown precision '{p.precision}'",
        "use 32 or bf16",
    )
    check(
        p.precision == "32" or s.backend == Backend.lightning,
        "segmenter.predict.precision",
        "nnU-Net's predictor sets its own precision",
        "set segmenter.predict.precision=32 with segmenter.backend=nnunet",
    )
    check(
        t.precision in (None, *TRAINING_PRECISIONS),
        "segmenter.train.precision",
        f"unknown precision '{t.precision}'",
        f"use one of {', '.join(TRAINING_PRECISIONS)}, or null for trainer.precision",
    )
    check(
        t.precision is None or s.backend == Backend.lightning,
        "segmenter.train.precision",
        "nnU-Net trains with its own precision",
        "leave segmenter.train.precision null with segmenter.backend=nnunet",
    )
    check(
        t.processes == 1 or (t.processes > 1 and s.backend == Backend.lightning),
        "segmenter.train.processes",
        f"{t.processes} processes: the Lightning proxies train 1 or more at a time, nnU-Net one",
        "use 1, or more than 1 with segmenter.backend=lightning",
    )
    check(
        t.processes == 1 or obj.trainer.accelerator == "cpu",
        "segmenter.train.processes",
        "several proxies at a time share a CPU's cores; on a GPU they would share its memory",
        "use 1 with trainer.accelerator other than cpu",
    )
    validate_nnunet(s.nnunet, "segmenter.nnunet")
    check(
        s.backend != "nnunet" or importlib.util.find_spec("nnunetv2") is not None,
        "segmenter.backend",
        "nnunet needs nnU-Net v2, which is not installed",
        "pip install -e '.[nnunet]' (or keep segmenter.backend=lightning)",
    )
    for name in s.strategies:
        check(
            not strategies.STRATEGIES[name].held_out or s.k >= 2,
            "segmenter.k",
            f"{name} is scored on held-out U images and needs k >= 2 folds",
            "set segmenter.k=2 or more",
        )
    e = obj.export
    check(
        e.model in (None, "recommended", *s.strategies),
        "export.model",
        f"'{e.model}' is not one of this run's strategies",
        f"use recommended, null, or one of {', '.join(s.strategies)}",
    )
    runs = range(s.k) if s.fold == "all" else [s.fold]
    check(
        e.fold is None or e.fold in runs,
        "export.fold",
        f"fold {e.fold} is not scored by this run (folds {list(runs)})",
        "pick one of them, or null for the first",
    )
    _validate_self_training(obj)


def _validate_self_training(obj: Config) -> None:
    s, st = obj.segmenter, obj.self_train
    teachers = [n for n in s.strategies if not strategies.STRATEGIES[n].held_out]
    check(
        "self_training" not in s.strategies
        or (st.teacher == "recommended" and teachers)
        or st.teacher in teachers,
        "self_train.teacher",
        f"'{st.teacher}' cannot teach self_training in this run",
        f"use recommended or one of {', '.join(teachers) or 'direct, tutorship, ...'}, "
        "listed in segmenter.strategies",
    )
    check(
        0 <= st.min_confidence < 1,
        "self_train.min_confidence",
        f"must be in [0, 1), got {st.min_confidence}",
        "softmax confidence of 3 classes lies in [1/3, 1]: try 0.6-0.9, or 0 to keep all",
    )
    check(
        st.min_confidence == 0 or s.backend == Backend.lightning,
        "self_train.min_confidence",
        "only the Lightning proxy leaves unsure pixels out of its loss",
        "set segmenter.backend=lightning, or self_train.min_confidence=0",
    )


def _validate_translator(obj: Config) -> None:
    """The translation stage's own checks, then those of the translator to train (imported
    here: the schema itself imports no torch). A given translator.sample.ckpt_path is checked
    when it is loaded, before the first stage."""
    tr, t = obj.translator, obj.translator.sample
    validate_translator(tr.module(), "translator")
    train = tr.train
    validate_schedule(train.batch_size, train.tiles_per_epoch, train.max_epochs, "translator.train")
    validate_tiles(tr.data, "translator.data")
    validate_overlap(t.tile_overlap, tr.data.tile_size, "translator.sample.tile_overlap")
    check(
        t.batch_size is None or t.batch_size >= 1,
        "translator.sample.batch_size",
        f"{t.batch_size} tiles per batch",
        "use a positive number, or null for the device's default",
    )
    check(t.samples >= 1, "translator.sample.samples", f"must be >= 1, got {t.samples}")
    check(tr.restarts >= 0, "translator.restarts", f"must be >= 0, got {tr.restarts}")
    check(
        not tr.init_from or Path(tr.init_from).is_file(),
        "translator.init_from",
        f"checkpoint {tr.init_from} not found",
        "point it at translator/checkpoints/last.ckpt of an earlier run (the pair's: "
        "translator=cyclegan_tiny)",
    )
    check(
        not (tr.init_from and t.ckpt_path),
        "translator.init_from",
        "starts a translator's training, but translator.sample.ckpt_path skips it",
        "drop one of them",
    )
    check(
        t.precision in ("32", "bf16"),
        "translator.sample.precision",
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
