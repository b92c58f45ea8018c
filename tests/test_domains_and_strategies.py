"""Domains made of several datasets, the oracle's held-out scoring, which checkpoint is used, and
the proxy's augmentation: the parts of the real-data recipe."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from conftest import TINY_RUN, compose_cfg, overridden, write_png
from torch.utils.data import DataLoader

from axondeepsynth import findings, report
from axondeepsynth.data import layouts, phantoms
from axondeepsynth.data.config import AugmentConfig, DatasetConfig, DomainConfig
from axondeepsynth.data.datamodules import SegmentationDataModule
from axondeepsynth.data.domain import load_domain
from axondeepsynth.data.records import Sample
from axondeepsynth.data.training_tiles import (
    RandomTiles,
    intensity_stats,
    segmentation_augmentation,
)
from axondeepsynth.errors import ConfigError
from axondeepsynth.inspect import main as inspect_main
from axondeepsynth.pipeline import run_stages, translate
from axondeepsynth.pipeline.context import Run, Translation, TranslatorCheckpoints
from axondeepsynth.pipeline.trainer import build_trainer
from axondeepsynth.training.segmenter import Segmenter


def two_sets(tmp: Path) -> tuple[Path, Path]:
    """Set `a`: BIDS phantoms (2 subjects); set `b`: AxonDeepSeg folders of other phantoms whose
    subjects carry the same names as a's."""
    a, b = tmp / "a", tmp / "b"
    phantoms.write_bids_dataset(a, "TEM", n_images=4, size=64, seed=0, n_subjects=2)
    phantoms.write_bids_dataset(tmp / "src", "TEM", n_images=4, size=64, seed=7, n_subjects=2)
    layouts.LAYOUTS["axondeepseg"].write(
        load_domain(DomainConfig(root=str(tmp / "src")), None, "src"), b
    )
    return a, b


def test_domain_of_two_datasets_keeps_them_apart(tmp_path: Path) -> None:
    a, b = two_sets(tmp_path)
    domain = DomainConfig(
        root=None,
        modality="TEM",
        sets=[DatasetConfig(str(a), scale=0.5), DatasetConfig(str(b), scale=1.0)],
    )
    samples = load_domain(domain, None, "L")
    assert [s.dataset for s in samples] == ["a"] * 4 + ["b"] * 4
    assert {s.image.shape for s in samples if s.dataset == "a"} == {(32, 32)}  # own scale each
    assert {s.image.shape for s in samples if s.dataset == "b"} == {(64, 64)}
    assert len({s.key for s in samples}) == 8
    # the same subject names in both sets are different animals: folds keep them apart
    assert {s.subject for s in samples if s.dataset == "a"} & {
        s.subject for s in samples if s.dataset == "b"
    }
    assert len({s.group for s in samples}) == 4
    for fold in range(2):
        dm = SegmentationDataModule(compose_cfg().segmenter.data, 8, 256, 0, samples, fold, k=2)
        dm.setup()
        train = {s.group for s in dm.train_samples}
        val = {s.group for s in dm.val_samples}
        assert not train & val and train | val == {s.group for s in samples}


def test_a_domain_of_sets_is_read_as_stored_where_it_is_scored(tmp_path: Path) -> None:
    """Pseudo labels and Dice are made at each image's stored size, whatever its set's scale."""
    a, b = two_sets(tmp_path)
    cfg = compose_cfg(
        "data.unlabeled.root=null",
        "data.unlabeled.phantom=null",
        f"data.unlabeled.sets=[{{root: {a}, scale: 0.5}}, {{root: {b}}}]",
        "data.unlabeled.modality=TEM",
        "data.target_pixel_size=0.08",  # set b follows it
    )
    run = Run(cfg, tmp_path / "run")
    assert {s.image.shape for s in run.domain("U")} == {(32, 32)}  # working size
    native = run.domain("U", native=True)
    assert {s.image.shape for s in native} == {(64, 64)} and len(native) == 8


def test_sets_are_composed_checked_and_need_no_root() -> None:
    cfg = compose_cfg(
        "data=sem", "data.labeled.sets=[{root: /x, scale: 0.1}, {root: /y, pixel_size: 0.005}]"
    )
    assert cfg.data.labeled.root is None
    assert [d.root for d in cfg.data.labeled.datasets()] == ["/x", "/y"]
    assert cfg.data.labeled.datasets()[1].modality == "TEM"  # from the domain
    with pytest.raises(ConfigError, match=r"data.labeled.sets\[1\].scale"):
        compose_cfg("data=sem", "data.labeled.sets=[{root: /x}, {root: /y, scale: inf}]")
    with pytest.raises(ConfigError, match="data.labeled.root"):
        compose_cfg("data=sem")
    with pytest.raises(ConfigError, match="segmenter.k"):
        compose_cfg("+experiment=demo", "segmenter.strategies=[oracle]", "segmenter.k=1")


def test_every_real_recipe_composes() -> None:
    for name in ("sem_real_cpu", "tem_real_cpu"):
        cfg = compose_cfg(f"+experiment={name}")
        assert "oracle" in cfg.segmenter.strategies and cfg.segmenter.k >= 2


# ----------------------------------------------------------------------------------------------
# The pipeline with a two-dataset L, tutorship and the oracle


def test_two_dataset_pipeline_and_the_oracle_scored_only_on_held_out_images(
    tmp_path: Path, monkeypatch
) -> None:
    a, b = two_sets(tmp_path)
    loaded = []  # (strategy's train set, checkpoint file) of every proxy evaluate loads
    load = Segmenter.load_from_checkpoint
    monkeypatch.setattr(
        Segmenter,
        "load_from_checkpoint",
        lambda path, **kw: loaded.append(Path(path).parts[-4::3]) or load(path, **kw),
    )
    tiny = tuple(o for o in TINY_RUN if not o.startswith("data.labeled.phantom."))
    cfg = compose_cfg(
        *overridden(
            tiny,
            "data.labeled.phantom=null",
            f"data.labeled.sets=[{{root: {a}, scale: 1.0}}, {{root: {b}, scale: 1.0}}]",
            "data.unlabeled.phantom.n_images=6",
            "data.unlabeled.phantom.n_subjects=3",
            "translator.sample.sampler=resnet",
            "segmenter.strategies=[tutorship,oracle]",
            "segmenter.predict.which=best",
            "segmenter.k=3",
            "segmenter.fold=all",
        ),
        tmp=tmp_path,
    )
    run_stages(cfg)
    out = Path(cfg.paths.output_dir)
    # best-by-validation where asked, but never for the oracle: its validation fold is its test
    assert {(s, f.split("-")[0]) for s, f in loaded} == {("L2U", "best"), ("U", "last.ckpt")}
    l2u = out / "translator" / "translate" / "l2u"
    assert (l2u / "a" / "dataset_description.json").is_file()  # each set in its own layout
    assert len(list((l2u / "b").rglob("image.png"))) == 4
    results = json.loads((out / "results.json").read_text())
    u_keys = {s["name"] for s in json.loads((out / "data_summary.json").read_text())["U"]["images"]}
    assert set(results["strategies"]["tutorship"]["folds"]["0"]["per_image"]) == u_keys
    scored = []
    for fold, scores in results["strategies"]["oracle"]["folds"].items():
        split = json.loads((out / "seg" / "U" / f"fold{fold}" / "split.json").read_text())
        assert set(scores["per_image"]) == set(split["val"])
        assert not set(scores["per_image"]) & set(split["train"])  # never scored on its training
        scored += list(scores["per_image"])
    assert sorted(scored) == sorted(u_keys)  # every U image scored once, by the fold holding it out
    overlays = {p.name.split("_")[2] for p in (out / "overlays").glob("tutorship_fold0_*.png")}
    assert overlays == {"best", "worst"}
    # the report picks each strategy's worst and best image over all folds for one picture
    found = findings.extremes(findings.collect([out]))
    assert set(found) == {"tutorship", "oracle"} and all(
        set(t) == {"worst", "best"} for t in found.values()
    )
    oracle = [
        d["axon"]
        for f in results["strategies"]["oracle"]["folds"].values()
        for d in f["per_image"].values()
    ]
    assert found["oracle"]["worst"][0] == min(oracle) and found["oracle"]["best"][0] == max(oracle)
    assert report.main([str(out)]) == 0
    montage = cv2.imread(str(out / "report" / "overlays.png"))
    assert montage is not None and montage.shape[0] > 2 * 260  # a row per strategy


# ----------------------------------------------------------------------------------------------
# Checkpoints


class _EarlyBest(pl.LightningModule):
    """A model whose monitored score is best in epoch 0 and worse after."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - 1).pow(2).sum() + 0 * batch.sum()

    def validation_step(self, batch, batch_idx) -> None:
        self.log("val/score", 1.0 - self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_last_checkpoint_is_the_newest_state_when_the_best_epoch_is_early(tmp_path: Path) -> None:
    cfg = compose_cfg("logger=none", "trainer.enable_progress_bar=false", tmp=tmp_path)
    trainer = build_trainer(cfg, tmp_path, "val/score", "max", max_epochs=3)
    data = DataLoader(torch.ones(4, 1), batch_size=2)
    trainer.fit(_EarlyBest(), data, data)
    ckpts = tmp_path / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["epoch"] == 2
    assert torch.load(ckpts / "best-000.ckpt", weights_only=True)["epoch"] == 0
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == ["best-000.ckpt", "last.ckpt"]


@pytest.mark.parametrize("choice", ["last", "best"])
def test_translation_uses_the_chosen_checkpoint(tmp_path: Path, monkeypatch, choice: str) -> None:
    cfg = compose_cfg("+experiment=demo", f"translator.sample.which={choice}", tmp=tmp_path)
    used = []
    made = Translation(root="r", roots=["r"], checkpoint="c", sampler="resnet", files={})
    monkeypatch.setattr(translate, "_translate", lambda run, ckpt, *a: used.append(ckpt) or made)
    run = Run(cfg, tmp_path / "run")
    run.outputs.translator = TranslatorCheckpoints(last="last.ckpt", best="best.ckpt")
    translate.run(run)
    assert used and set(used) == {f"{choice}.ckpt"}


# ----------------------------------------------------------------------------------------------
# The proxy's augmentation and normalisation


def blocks(size: int = 96, seed: int = 0) -> np.ndarray:
    """A label map of 16-pixel blocks of random classes."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 3, (size // 16, size // 16)), np.ones((16, 16))).astype(np.uint8)


OFF = dict(
    p_rotate=0.0,
    p_scale=0.0,
    p_elastic=0.0,
    p_noise=0.0,
    p_blur=0.0,
    p_brightness=0.0,
    p_contrast=0.0,
    p_lowres=0.0,
    p_gamma=0.0,
    mirror=False,
)


@pytest.mark.parametrize(
    "spatial", [{"p_rotate": 1.0}, {"p_scale": 1.0}, {"p_elastic": 1.0}, {"mirror": True}]
)
def test_labels_follow_the_image_under_every_spatial_transform(spatial: dict) -> None:
    labels = blocks()
    image = labels.astype(np.float32) / 2  # the image encodes its label: 0, 0.5, 1
    transform = segmentation_augmentation(48, AugmentConfig(**(OFF | spatial)))
    moved = 0
    for seed in range(8):
        transform.set_random_seed(seed)
        out = transform(image=image, mask=labels)
        assert out["mask"].shape == (48, 48) and set(np.unique(out["mask"])) <= {0, 1, 2}
        agree = (np.rint(out["image"] * 2) == out["mask"]).mean()
        assert agree > 0.95, f"labels drifted from the image ({agree:.3f} of pixels agree)"
        moved += not any(
            np.array_equal(out["mask"], labels[y : y + 48, x : x + 48])
            for y in range(0, 49)
            for x in range(0, 49)
        )
    assert moved > 0 or spatial == {"mirror": True}


def test_intensity_transforms_leave_labels_alone() -> None:
    labels = blocks()
    image = np.random.default_rng(0).random(labels.shape, dtype=np.float32)
    on = {
        k: 1.0 for k in OFF if k.startswith("p_") and k not in ("p_rotate", "p_scale", "p_elastic")
    }
    transform = segmentation_augmentation(48, AugmentConfig(**(OFF | on)))
    transform.set_random_seed(3)
    out = transform(image=image, mask=labels)
    crop = [
        (y, x)
        for y in range(49)
        for x in range(49)
        if np.array_equal(out["mask"], labels[y : y + 48, x : x + 48])
    ]
    assert crop, "the mask is a plain crop of the labels"
    y, x = crop[0]
    assert not np.allclose(out["image"], image[y : y + 48, x : x + 48])  # intensities changed


def test_tiles_are_normalised_by_their_whole_image() -> None:
    image = np.random.default_rng(0).random((64, 64), dtype=np.float32) * 0.5 + 0.2
    sample = Sample("x", "s", image, 0.1, blocks(64), Path("x.png"))
    mean, std = intensity_stats(image, "image")
    assert mean == pytest.approx(image.mean(), rel=1e-5) and std == pytest.approx(image.std(), 1e-4)
    tile = RandomTiles(
        [sample],
        64,
        1,
        0,
        transform=segmentation_augmentation(64, AugmentConfig(**OFF)),
        normalize="image",
    )[0]
    np.testing.assert_allclose(tile["image"][0].numpy(), (image - mean) / std, rtol=1e-5, atol=1e-5)
    assert intensity_stats(image, "fixed") == (0.5, 0.5) and intensity_stats(image, None) == (0, 1)


# ----------------------------------------------------------------------------------------------
# inspect: structure sizes


def test_inspect_reports_median_axon_diameter(tmp_path: Path, capsys) -> None:
    yy, xx = np.mgrid[:200, :200]
    axon = np.zeros((200, 200), np.uint8)
    for cy, cx in ((50, 50), (50, 150), (150, 100)):
        axon[(yy - cy) ** 2 + (xx - cx) ** 2 <= 20**2] = 255  # discs of diameter ~40 px
    root = tmp_path / "ads"
    write_png(root / "image.png", np.full((200, 200), 128, np.uint8))
    write_png(root / "image_seg-axon.png", axon)
    write_png(root / "image_seg-myelin.png", np.zeros_like(axon))
    (root / "pixel_size_in_micrometer.txt").write_text("0.05\n")
    assert inspect_main([str(root), "--scale", "0.5", "--json"]) == 0
    sizes = json.loads(capsys.readouterr().out)["axon_diameter"]
    assert sizes["n_axons"] == 3
    assert sizes["median_px_stored"] == pytest.approx(40, rel=0.02)
    assert sizes["median_um"] == pytest.approx(2.0, rel=0.02)
    assert sizes["median_px_resampled"] == pytest.approx(20, rel=0.02)
    assert inspect_main([str(root), str(root), "--scale", "0.5"]) == 2  # one scale per path
