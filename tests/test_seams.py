"""The joints new features plug into: a translator, a strategy and a dataset layout added as one
entry each run end to end; stage keys follow one rule; the config refuses what a chosen stage
or strategy lacks before any work; Lightning's arguments pass through; --help needs no torch."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import subprocess
import sys
import types
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from conftest import REPO, TINY_RUN, StandInPredictions, compose_cfg
from torch import nn

from axondeepsynth import config, schema, strategies
from axondeepsynth.config import Config
from axondeepsynth.data import layouts, phantoms
from axondeepsynth.data.layouts import axondeepseg
from axondeepsynth.data.records import Sample, load_sample
from axondeepsynth.errors import ConfigError
from axondeepsynth.pipeline import evaluate, keys, run_stages, stage_function
from axondeepsynth.pipeline.context import Run
from axondeepsynth.pipeline.trainer import build_trainer
from axondeepsynth.training import translators
from axondeepsynth.training.config import OWNED_BY_STAGE, TrainerConfig, TranslatorConfig
from axondeepsynth.training.metrics import TranslationMetrics

# ----------------------------------------------------------------------------------------------
# One entry each: a translator, a strategy, a layout


class Identity(pl.LightningModule):
    """The least a translator must be: trainable by the stage, checkable, translating."""

    samplers = ("copy",)

    def __init__(self, cfg, paired_val: bool = False, seed: int = 0) -> None:
        super().__init__()
        if isinstance(cfg, dict):
            cfg = schema.structured(TranslatorConfig, cfg)
        self.cfg = cfg
        self.save_hyperparameters(
            {"cfg": schema.plain(self.cfg), "paired_val": paired_val, "seed": seed}
        )
        self.nets = nn.ModuleDict({"gain": nn.Identity()})
        self.unused = nn.Parameter(torch.zeros(()))  # an optimiser needs something
        self.metrics = TranslationMetrics()

    @classmethod
    def check(cls, cfg, *, tile: int, batch: int, sampler: str | None, samples: int) -> None:
        pass

    def inference_networks(self) -> nn.ModuleDict:
        return self.nets

    def translate(self, x, direction, sampler=None, generator=None):
        return self.nets["gain"](x)

    def training_step(self, batch, batch_idx):
        return (self.unused * 0).sum()

    def validation_step(self, batch, batch_idx) -> None:
        self.metrics.update("cycle_l", self.translate(batch["x_l"], "l2u"), batch["x_l"])
        self.metrics.update("cycle_u", self.translate(batch["x_u"], "u2l"), batch["x_u"])

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.metrics.compute(self.all_gather))
        self.metrics.reset()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


class Renamed:
    """A dataset layout: AxonDeepSeg folders marked by a `renamed.txt` at their root."""

    @staticmethod
    def detect(root: Path) -> bool:
        return (root / "renamed.txt").is_file()

    scan = staticmethod(axondeepseg.scan)
    image_path = staticmethod(axondeepseg.image_path)

    @staticmethod
    def write(samples, root, modality=None, description=None):
        (root / "renamed.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / "renamed.txt").write_text("")
        return axondeepseg.write(samples, root)


def test_a_new_translator_strategy_layout_and_stage_run_end_to_end(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setitem(translators.TRANSLATORS, "identity", Identity)
    counted = types.ModuleType("axondeepsynth.pipeline.count")  # pipeline/count.py
    counted.run = lambda run: (run.out / "count.txt").write_text(str(len(run.domain("U"))))
    monkeypatch.setitem(sys.modules, counted.__name__, counted)
    monkeypatch.setattr(config, "STAGES", (*config.STAGES, "count"))
    swapped = strategies.Strategy("swapped", (("L2U", "U2L"),), "L->U model on U->L", "#000000")
    monkeypatch.setitem(strategies.STRATEGIES, "swapped", swapped)
    monkeypatch.setattr(layouts, "LAYOUTS", {"renamed": Renamed, **layouts.LAYOUTS})
    source = tmp_path / "tem"
    phantoms.write_bids_dataset(source, "TEM", n_images=4, size=64, seed=3, n_subjects=2)
    renamed = tmp_path / "renamed"
    Renamed.write([load_sample(r) for r in layouts.scan(source).records], renamed)
    assert layouts.scan(renamed).layout == "axondeepseg" and layouts.detect(renamed) is Renamed

    cfg = compose_cfg(
        *TINY_RUN,
        "translator.name=identity",
        "translator.train.sampler=resnet",
        "data.labeled.phantom=null",
        f"data.labeled.root={renamed}",
        "segmenter.strategies=[direct,swapped]",
        "stages=[prepare,train_translator,translate,train_segmenter,evaluate,export,count]",
        tmp=tmp_path,
    )
    run_stages(cfg)
    out = Path(cfg.paths.output_dir)
    assert (out / "count.txt").read_text() == "4"
    results = json.loads((out / "results.json").read_text())
    assert set(results["strategies"]) == {"direct", "swapped"}
    # every pseudo label and every true label map is measured, fibre by fibre
    direct = results["strategies"]["direct"]["folds"]["0"]
    assert direct["morphometrics"]["n_axons_truth"] > 0
    csvs = list((out / "pseudo_labels" / "direct" / "fold0").rglob("*_morphometrics.csv"))
    assert len(csvs) == len(direct["per_image"]) and (out / "morphometrics.png").is_file()
    # and given a confidence map and score, least confident first
    maps = list((out / "pseudo_labels" / "direct" / "fold0").rglob("*_confidence.png"))
    scores = list(direct["confidence"].values())
    assert len(maps) == len(scores) == len(csvs) and scores == sorted(scores)
    # the identity translation copies L, in L's (new) layout, labels carried across
    l2u = out / "translator" / "translate" / "l2u"
    assert (l2u / "renamed.txt").is_file()
    swapped_dice = results["strategies"]["swapped"]["folds"]["0"]["mean"]
    direct_dice = results["strategies"]["direct"]["folds"]["0"]["mean"]
    # an identity translation keeps L's content: it passes the translator check
    assert results["translator_check"]["label_separation"]["mean"] == pytest.approx(1.0)
    assert results["translator_check"]["passed"] is True
    # an identity translation makes L2U = L and U2L = U: the strategy is direct, retrained alike
    assert swapped_dice == pytest.approx(direct_dice, abs=0.05)


def test_fused_averages_its_models_softmax(tmp_path: Path, monkeypatch) -> None:
    """fused = argmax of the mean of tutorship's and adaptation's probabilities, per pixel."""
    rng = np.random.default_rng(0)
    probs = {name: rng.dirichlet(np.ones(3), (24, 24)).transpose(2, 0, 1) for name in "ab"}

    class Fixed:
        def __init__(self, name: str) -> None:
            self.name = name

        def predict_proba(self, x, *args):
            return probs[self.name]

    u = [Sample("u1", "s", np.zeros((24, 24), np.float32), 0.1, None, Path("u.png"), (24, 24))]
    cfg = compose_cfg(*TINY_RUN, "segmenter.strategies=[fused]", tmp=tmp_path)
    run = Run(cfg, tmp_path / "run")
    monkeypatch.setattr(run, "domain", lambda which, native=False: u)
    given = StandInPredictions([(Fixed("a"), [[None]]), (Fixed("b"), [[None]])])
    evaluate.evaluate_fold(run, strategies.STRATEGIES["fused"], 0, truth={}, predictions=given)
    written = run.out / "pseudo_labels" / "fused" / "fold0" / "u1_seg-axonmyelin.png"
    label = cv2.imread(str(written), cv2.IMREAD_GRAYSCALE)
    expected = ((probs["a"] + probs["b"]) / 2).argmax(0)
    assert np.array_equal(label, np.select([expected == 2, expected == 1], [255, 127], 0))
    assert not np.array_equal(probs["a"].argmax(0), expected)  # the average decided something


def test_the_strategy_table_derives_what_each_needs() -> None:
    s = strategies.STRATEGIES
    assert s["tutorship"].translations == ("l2u",) and s["adaptation"].translations == ("u2l",)
    assert s["fused"].translations == ("l2u", "u2l") and s["direct"].translations == ()
    assert [n for n, v in s.items() if v.held_out] == ["self_training", "oracle"]
    assert [n for n, v in s.items() if v.pseudo] == ["self_training"]


# ----------------------------------------------------------------------------------------------
# Stage keys: one rule


def _other(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, StrEnum):
        return next(m for m in type(value) if m != value)
    if isinstance(value, int | float):
        return value + 1
    return "/elsewhere" if value is None or isinstance(value, str) else value


def _speed_fields(obj, prefix: str = ""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _speed_fields(value, f"{prefix}{f.name}.")
        elif f.metadata.get("role") == "speed":
            yield f"{prefix}{f.name}"


def _all_keys(cfg: Config) -> tuple:
    return (
        keys.translator(cfg),
        keys.translation(cfg, "t.ckpt", "l2u", 2),
        keys.translation(cfg, "t.ckpt", "u2l", 2),
        keys.segmenter(cfg, "L", 0),
        keys.results(cfg),
    )


def test_speed_and_display_switches_never_change_a_stage_key(tmp_path: Path) -> None:
    base = _all_keys(compose_cfg("+experiment=demo", tmp=tmp_path))
    names = []
    for name in _speed_fields(compose_cfg("+experiment=demo", tmp=tmp_path)):
        cfg = compose_cfg("+experiment=demo", tmp=tmp_path)
        *path, attr = name.split(".")
        parent = cfg
        for part in path:
            parent = getattr(parent, part)
        setattr(parent, attr, _other(getattr(parent, attr)))
        assert _all_keys(cfg) == base, name
        names.append(name)
    assert {"trainer.enable_progress_bar", "translator.data.num_workers"} <= set(names)
    assert {"translator.train.compile", "translator.train.channels_last"} <= set(names)
    assert {"translator.sample.dir", "segmenter.predict.batch_size"} <= set(names)


@pytest.mark.parametrize(
    ("override", "changed"),
    [
        ("translator.train.lambda_l1=1.0", {0, 1, 2, 4}),  # the translator and what depends on it
        ("translator.sample.sampler=resnet", {1, 2, 4}),
        ("segmenter.net.lr=0.1", {3, 4}),
        ("segmenter.train.precision=bf16-mixed", {3, 4}),
        ("segmenter.predict.tta_flips=false", {4}),  # predicting, not training
        (
            "segmenter.nnunet.epochs=5",
            {4},
        ),  # another backend's setting: the Lightning proxy's key stays
        ("seed=1", {0, 1, 2, 3, 4}),
    ],
)
def test_a_change_of_what_is_learnt_or_written_changes_its_keys(
    tmp_path: Path, override: str, changed: set
) -> None:
    base = _all_keys(compose_cfg("+experiment=demo", tmp=tmp_path))
    new = _all_keys(compose_cfg("+experiment=demo", override, tmp=tmp_path))
    assert {i for i, (a, b) in enumerate(zip(base, new, strict=True)) if a != b} == changed


def test_a_warm_start_is_keyed_by_its_files_content_not_its_path(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    same, moved, other = (tmp_path / n for n in ("a.ckpt", "elsewhere/a.ckpt", "b.ckpt"))
    same.write_bytes(b"a pair's weights")
    moved.write_bytes(b"a pair's weights")
    other.write_bytes(b"another pair's weights")
    base = _all_keys(compose_cfg("+experiment=demo", tmp=tmp_path))
    key = {
        p: _all_keys(compose_cfg("+experiment=demo", f"translator.init_from={p}", tmp=tmp_path))
        for p in (same, moved, other)
    }
    assert key[same] == key[moved] != key[other]
    changed = {i for i, (a, b) in enumerate(zip(base, key[same], strict=True)) if a != b}
    assert changed == {0, 1, 2, 4}  # the translator and what depends on it


def test_the_translator_stage_warm_starts_syndiff_from_a_pair(tmp_path: Path) -> None:
    def train(run: str, name: str, *extra: str) -> tuple[dict[str, torch.Tensor], Path]:
        tmp = tmp_path / run
        stages = ("stages=[prepare,train_translator]", "translator.train.ema_decay=0.999")
        run_stages(compose_cfg(*TINY_RUN, f"translator={name}", *stages, *extra, tmp=tmp))
        ckpt = tmp / "out" / "translator" / "checkpoints" / "last.ckpt"
        return torch.load(ckpt, weights_only=True)["state_dict"], ckpt

    pair, pair_ckpt = train("pair", "cyclegan_tiny", "seed=1")  # not SynDiff's initialisation
    warm, _ = train("warm", "syndiff_tiny", f"translator.init_from={pair_ckpt}")
    cold, _ = train("cold", "syndiff_tiny")
    w = "G_ema.module.res_l2u.model.1.weight"  # a few batches of EMA 0.999 on the pair's
    assert (warm[w] - pair[w]).abs().max() < 0.01 * pair[w].abs().max()
    assert (cold[w] - pair[w]).abs().max() > 0.1 * pair[w].abs().max()


def test_a_warm_start_missing_or_beside_a_given_translator_is_refused(tmp_path: Path) -> None:
    pair = tmp_path / "pair.ckpt"
    with pytest.raises(ConfigError, match=f"init_from.*{pair} not found"):
        compose_cfg("+experiment=demo", f"translator.init_from={pair}", tmp=tmp_path)
    pair.write_bytes(b"a pair's weights")
    with pytest.raises(ConfigError, match="init_from.*ckpt_path skips"):
        compose_cfg(
            "+experiment=demo",
            f"translator.init_from={pair}",
            "translator.sample.ckpt_path=syndiff.ckpt",
            tmp=tmp_path,
        )


def test_nnunets_planning_budget_is_in_its_datasets_key(tmp_path: Path) -> None:
    """A smaller VRAM budget plans other batches and patches: the dataset is planned anew."""
    base = keys.nnunet_dataset(compose_cfg("+experiment=demo", tmp=tmp_path), "L")
    smaller = compose_cfg(
        "+experiment=demo", "segmenter.nnunet.gpu_memory_target_gb=2", tmp=tmp_path
    )
    assert keys.nnunet_dataset(smaller, "L") != base


# ----------------------------------------------------------------------------------------------
# The config: choices at compose, prerequisites in validate, Lightning's arguments


@pytest.mark.parametrize(
    "typo",
    [
        "segmenter.net.optimizer=adam",
        "segmenter.net.unet.norm=group",
        "data.cache=disk",
        "data.labeled.phantom.look=MRI",
        "segmenter.predict.which=newest",
    ],
)
def test_a_mistyped_choice_fails_at_compose_naming_the_key(typo: str) -> None:
    with pytest.raises(Exception, match=typo.split("=")[0].rsplit(".", 1)[-1]):
        compose_cfg(typo)


@pytest.mark.parametrize(
    ("stages", "strategies_", "match"),
    [
        ("[prepare,evaluate]", "[direct]", "evaluate needs the segmenters"),
        ("[prepare,train_segmenter,evaluate]", "[tutorship]", "L->U translation"),
        ("[prepare,train_translator,train_segmenter,evaluate]", "[adaptation]", "U->L"),
        ("[prepare,translate]", "[tutorship]", "translate needs a translator"),
        ("[evaluate,prepare]", "[direct]", "pipeline order"),
        ("[prepare,train_segmenter,export]", "[direct]", "export keeps a model it scored"),
        ("[prepare,train_segmenter,self_train]", "[direct]", "self_train learns from its"),
        ("[prepare,train_segmenter,evaluate]", "[direct,self_training]", "add self_train"),
    ],
)
def test_a_stage_without_its_prerequisite_is_refused_before_any_work(
    stages: str, strategies_: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        compose_cfg("+experiment=demo", f"stages={stages}", f"segmenter.strategies={strategies_}")


def test_every_stage_the_schema_names_has_its_function() -> None:
    assert all(callable(stage_function(name)) for name in config.STAGES)


def test_an_unknown_translator_or_strategy_names_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match="cyclegan.*syndiff|syndiff.*cyclegan"):
        compose_cfg("+experiment=demo", "translator.name=cut")
    with pytest.raises(ConfigError, match="fused"):
        compose_cfg("+experiment=demo", "segmenter.strategies=[tutor]")


def test_the_trainer_config_covers_every_lightning_trainer_argument() -> None:
    lightning = set(inspect.signature(pl.Trainer).parameters)
    ours = {f.name for f in dataclasses.fields(TrainerConfig)}
    assert ours | set(OWNED_BY_STAGE) == lightning
    assert not ours & set(OWNED_BY_STAGE)


def test_any_trainer_argument_reaches_the_trainer(tmp_path: Path) -> None:
    cfg = compose_cfg(
        "trainer.gradient_clip_val=0.5", "trainer.fast_dev_run=true", "logger=none", tmp=tmp_path
    )
    trainer = build_trainer(cfg, tmp_path)
    assert trainer.gradient_clip_val == 0.5 and trainer.fast_dev_run is True


def test_the_proxies_train_in_their_own_precision_and_the_translator_in_the_trainers(
    tmp_path: Path,
) -> None:
    from axondeepsynth.pipeline.train_segmenter import proxy_trainer

    cfg = compose_cfg("segmenter.train.precision=bf16-mixed", "logger=none", tmp=tmp_path)
    assert proxy_trainer(cfg, tmp_path / "proxy").precision == "bf16-mixed"
    assert build_trainer(cfg, tmp_path / "translator").precision == "32-true"
    cfg = compose_cfg("trainer.precision=bf16-mixed", "logger=none", tmp=tmp_path)
    assert proxy_trainer(cfg, tmp_path / "proxy").precision == "bf16-mixed"  # null: the trainer's
    for bad, why in (("16", "unknown precision"), ("bf16-mixed", "nnU-Net trains with its own")):
        with pytest.raises(ConfigError, match=why):
            compose_cfg(f"segmenter.train.precision={bad}", "segmenter.backend=nnunet")


def test_bf16_on_a_cpu_that_would_emulate_it_is_named(tmp_path: Path, monkeypatch) -> None:
    from axondeepsynth.pipeline import emulated_bf16

    cfg = compose_cfg(
        "segmenter.train.precision=bf16-mixed", "segmenter.predict.precision=bf16", tmp=tmp_path
    )
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert emulated_bf16(cfg) == {}
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert emulated_bf16(cfg) == {
        "segmenter.train.precision": "32-true",
        "segmenter.predict.precision": "32",
    }
    assert emulated_bf16(compose_cfg(tmp=tmp_path)) == {}  # fp32 everywhere: nothing to say


def test_a_strategy_that_reruns_the_command_per_rank_is_refused(tmp_path: Path) -> None:
    cfg = compose_cfg("trainer=ddp_cpu", "trainer.strategy=ddp", "logger=none", tmp=tmp_path)
    with pytest.raises(ConfigError, match="ddp_spawn"):
        build_trainer(cfg, tmp_path)


def test_help_and_the_schema_import_no_torch() -> None:
    code = "import sys, axondeepsynth.run; print(sorted({'torch', 'cv2'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["syndiff", "cyclegan"])
def test_checkpoints_of_the_previous_layout_load_and_translate_alike(name: str) -> None:
    """Tiny translators trained and saved by the code before the translator registry (commit
    a494b93: one SynDiff class for both), with what they translated a fixed image to then."""
    fixtures = REPO / "tests" / "fixtures" / "translator_v0"
    module = translators.load(fixtures / f"translator_v0_{name}.ckpt")
    assert type(module) is translators.TRANSLATORS[name]
    x = torch.from_numpy(np.load(fixtures / "translator_v0_input.npy"))
    y = module.translate(x, "l2u", generator=torch.Generator().manual_seed(1))
    expected = np.load(fixtures / f"translator_v0_{name}_l2u.npy")
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-6)


# what each layer may import of this package: the flow runs one way
MAY_IMPORT = {
    "nets": {"nets"},
    "data": {"data", "schema", "errors", "io", "lightning_internals", "strategies", "nets"},
    "training": {"training", "data", "schema", "errors", "io", "nets", "strategies"},
}


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_layers_import_only_downstream(layer: str) -> None:
    package = REPO / "axondeepsynth"
    for path in (package / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("axondeepsynth"):
                parts = node.module.split(".")
                target = parts[1] if len(parts) > 1 else node.names[0].name
                assert target in MAY_IMPORT[layer], (
                    f"{path.relative_to(REPO)} imports {node.module}"
                )


def test_fused_reuses_the_probabilities_of_its_members_bitwise(tmp_path: Path, monkeypatch) -> None:
    """Evaluate makes each model's probabilities of an image once: fused, scored after
    tutorship and adaptation, predicts nothing itself and writes what it writes alone."""
    from axondeepsynth.training import proxy

    cfg = compose_cfg(*TINY_RUN, "segmenter.strategies=[tutorship,adaptation,fused]", tmp=tmp_path)
    run_stages(cfg)
    out = Path(cfg.paths.output_dir)
    assert not (out / "evaluate_cache").exists()  # removed once evaluate is done
    calls, load = [], proxy.load

    def counted(*args, **kwargs):
        model = load(*args, **kwargs)
        real = model.predict_proba
        model.predict_proba = lambda *a, **k: calls.append(1) or real(*a, **k)
        return model

    monkeypatch.setattr(proxy, "load", counted)
    run = Run(cfg, out)
    for stage in ("prepare", "train_translator", "translate", "train_segmenter"):
        stage_function(stage)(run)  # finished: reused, not redone
    n_u, fused = len(run.domain("U")), strategies.STRATEGIES["fused"]
    written = out / "pseudo_labels" / "fused"

    alone = evaluate.Predictions(run, [fused])  # as if fused were the only strategy
    evaluate.evaluate_fold(run, fused, 0, {}, alone)
    assert len(calls) == 2 * n_u
    by_itself = {p.name: p.read_bytes() for p in written.rglob("*.png")}
    calls.clear()
    shared = evaluate.Predictions(run, run.strategies)
    for name in ("tutorship", "adaptation", "fused"):
        evaluate.evaluate_fold(run, strategies.STRATEGIES[name], 0, {}, shared)
        kept = len(list(shared.dir.glob("*.npy")))
        shared.release(strategies.STRATEGIES[name], 0)
        # kept for fused while it is to come; let go once it has read them
        assert len(list(shared.dir.glob("*.npy"))) == (0 if name == "fused" else kept)
    assert kept == 2 * n_u and not shared.models
    assert len(calls) == 2 * n_u  # fused predicted nothing itself
    assert {p.name: p.read_bytes() for p in written.rglob("*.png")} == by_itself
    assert len(by_itself) >= 4 * n_u  # three masks and a confidence map per image
