"""nnU-Net v2 as the proxy backend: refused with the install command where it is missing; where
it is installed, a tiny phantom run trains, predicts and scores with it end to end on a CPU."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from conftest import compose_cfg, overridden

from axondeepsynth import segment
from axondeepsynth.data import images, layouts
from axondeepsynth.data.labels import from_axonmyelin
from axondeepsynth.data.records import load_sample
from axondeepsynth.errors import ConfigError
from axondeepsynth.training.segmenter import dice_per_class

SHORT = [
    "+experiment=demo",
    "stages=[prepare,train_segmenter,evaluate,export]",
    "segmenter.strategies=[direct,oracle]",
    "segmenter.k=2",
    "segmenter.fold=0",
    "segmenter.backend=nnunet",
    "segmenter.nnunet.epochs=2",
    "segmenter.nnunet.iterations_per_epoch=4",
    "segmenter.nnunet.val_iterations_per_epoch=1",
    "segmenter.nnunet.processes=1",
    "data.labeled.phantom.n_images=4",
    "data.labeled.phantom.size=128",
    "data.unlabeled.phantom.n_images=4",
    "data.unlabeled.phantom.size=128",
    "logger=csv",
    "trainer.enable_progress_bar=false",
]


def test_the_backend_without_nnunet_names_the_extra(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nnunetv2" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"(?s)segmenter.backend.*pip install -e '\.\[nnunet\]'"):
        compose_cfg("+experiment=demo", "segmenter.backend=nnunet")


@pytest.mark.e2e
def test_nnunet_trains_predicts_and_scores_a_tiny_phantom_run(tmp_path: Path) -> None:
    pytest.importorskip("nnunetv2", reason="the nnU-Net backend: pip install -e '.[nnunet]'")
    from axondeepsynth.pipeline import run_stages

    names = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_n_proc_DA")
    before = {k: os.environ.get(k) for k in names}
    cfg = compose_cfg(*SHORT, tmp=tmp_path)
    run_stages(cfg)
    out = Path(cfg.paths.output_dir)
    results = json.loads((out / "results.json").read_text())
    for strategy in ("direct", "oracle"):
        fold = results["strategies"][strategy]["folds"]["0"]
        assert fold["per_image"] and all(0 <= d["axon"] <= 1 for d in fold["per_image"].values())
        assert list(fold["confidence"].values()) == sorted(fold["confidence"].values())
    # the oracle is scored on the U images its nnU-Net fold held out, as with Lightning
    split = json.loads((out / "seg" / "U" / "fold0" / "split.json").read_text())
    assert set(results["strategies"]["oracle"]["folds"]["0"]["per_image"]) == set(split["val"])
    nn_split = json.loads(
        next(
            (out / "seg" / "U" / "nnunet" / "preprocessed").glob("*/splits_final.json")
        ).read_text()
    )
    assert sorted(nn_split[0]["val"]) == sorted(k.replace("/", "_") for k in split["val"])
    done = json.loads((out / "seg" / "L" / "fold0" / "done.json").read_text())["output"]
    assert Path(done["last"]).name == "checkpoint_final.pth" and out in Path(done["last"]).parents
    # nnU-Net's folders were set for the stage only
    after = {k: os.environ.get(k) for k in before}
    assert after == before
    labels = list((out / "pseudo_labels" / "direct" / "fold0").glob("*_seg-axonmyelin.png"))
    assert len(labels) == 4
    # the kept model: an nnU-Net model folder that segments U again to the same Dice
    meta = json.loads((out / "model" / "model.json").read_text())
    assert meta["backend"] == "nnunet" and meta["strategy"] == "direct"
    folder = out / "model" / Path(meta["members"][0]["checkpoint"]).parent.parent
    assert {p.name for p in folder.iterdir()} == {"dataset.json", "plans.json", "fold_0"}
    kept = json.loads((folder / "plans.json").read_text())["configurations"]["2d"]
    assert kept["conv_kernel_sizes"] == kept["architecture"]["arch_kwargs"]["kernel_sizes"]
    u_root = Path(cfg.data.unlabeled.root)
    masks = tmp_path / "masks"
    assert segment.main([str(out / "model"), str(u_root), "--out", str(masks)]) == 0
    per_image = results["strategies"]["direct"]["folds"]["0"]["per_image"]
    for record in layouts.scan(u_root).records:
        (found,) = masks.rglob(f"{record.name}_seg-axonmyelin.png")
        dice = dice_per_class(from_axonmyelin(images.read_mask(found)), load_sample(record).labels)
        for c in ("axon", "myelin"):
            assert dice[c] == pytest.approx(per_image[record.name][c], abs=1e-3)


@pytest.mark.e2e
def test_a_killed_nnunet_fold_continues_from_its_own_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    """Stopped after epoch 2 of 3: `resume=last` trains epoch 3 only, from nnU-Net's
    checkpoint_latest.pth in the fold's own directory."""
    pytest.importorskip("nnunetv2", reason="the nnU-Net backend: pip install -e '.[nnunet]'")
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from axondeepsynth.pipeline import run_stages

    changes = (
        "segmenter.strategies=[direct]",
        "segmenter.nnunet.epochs=3",
        "segmenter.nnunet.save_every=1",
    )
    overrides = overridden(tuple(SHORT), *changes)
    real, started = nnUNetTrainer.on_epoch_end, []

    def node_lost(self):
        real(self)
        if self.current_epoch == 2:
            raise RuntimeError("node lost")

    def record_start(self):
        started.append(self.current_epoch)
        return real_start(self)

    real_start = nnUNetTrainer.on_train_start
    monkeypatch.setattr(nnUNetTrainer, "on_epoch_end", node_lost)
    cfg = compose_cfg(*overrides, tmp=tmp_path)
    with pytest.raises(RuntimeError, match="node lost"):
        run_stages(cfg)
    fold = next((Path(cfg.paths.output_dir) / "seg" / "L" / "fold0" / "nnunet").rglob("fold_0"))
    assert (fold / "checkpoint_latest.pth").is_file() and not (
        fold / "checkpoint_final.pth"
    ).exists()
    monkeypatch.setattr(nnUNetTrainer, "on_epoch_end", real)
    monkeypatch.setattr(nnUNetTrainer, "on_train_start", record_start)
    run_stages(compose_cfg(*overrides, "resume=last", tmp=tmp_path))
    assert (fold / "checkpoint_final.pth").is_file()
    assert started == [2]  # the third epoch, not a fresh start


def test_kept_plans_carry_the_flat_keys_of_older_nnunet() -> None:
    """AxonDeepSeg 5.5's nnU-Net 2.2 reads the network from flat keys that 2.4+ moved into
    `architecture`: the kept plans.json has both, the flat ones derived from the new."""
    from axondeepsynth.training.nnunet import with_legacy_keys

    kw = {
        "n_stages": 3,
        "features_per_stage": [32, 64, 128],
        "kernel_sizes": [[3, 3], [3, 3], [3, 3]],
        "strides": [[1, 1], [2, 2], [2, 1]],
        "n_conv_per_stage": [2, 2, 2],
        "n_conv_per_stage_decoder": [2, 2],
    }
    plans = {
        "configurations": {
            "2d": {
                "patch_size": [64, 64],
                "architecture": {
                    "network_class_name": "dynamic_network_architectures.architectures.unet."
                    "PlainConvUNet",
                    "arch_kwargs": kw,
                },
            },
            "3d_cascade_fullres": {"inherits_from": "3d_fullres"},
        }
    }
    legacy = with_legacy_keys(plans)["configurations"]
    assert legacy["2d"] | {} == plans["configurations"]["2d"] | {
        "UNet_class_name": "PlainConvUNet",
        "UNet_base_num_features": 32,
        "unet_max_num_features": 128,
        "conv_kernel_sizes": kw["kernel_sizes"],
        "pool_op_kernel_sizes": kw["strides"],
        "n_conv_per_stage_encoder": [2, 2, 2],
        "n_conv_per_stage_decoder": [2, 2],
        "num_pool_per_axis": [2, 1],
    }
    assert legacy["3d_cascade_fullres"] == {"inherits_from": "3d_fullres"}
    assert "UNet_class_name" not in plans["configurations"]["2d"]  # the input is left alone
