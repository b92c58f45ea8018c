"""Segmentation proxy: U-Net shapes, the Dice+CE loss, Dice metrics, tiled inference, training."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torchmetrics.segmentation import DiceScore

from axondeepsynth.data.labels import AXON, IGNORE, MYELIN
from axondeepsynth.data.training_tiles import intensity_stats
from axondeepsynth.nets.losses import deep_supervision_loss, dice_ce_loss
from axondeepsynth.nets.unet import UNet, UNetConfig
from axondeepsynth.training.config import SegmenterConfig
from axondeepsynth.training.segmenter import Segmenter, dice_per_class, dice_scores

TINY = UNetConfig(base_channels=8, depth=3, deep_supervision=False)


def toy_batch(n: int, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Axon disks inside myelin rings; intensity is dark myelin, bright axon, gray background."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n):
        lab = np.zeros((size, size), np.uint8)
        for _ in range(2):
            cx, cy, r = (int(v) for v in rng.integers([6, 6, 3], [size - 6, size - 6, 5]))
            cv2.circle(lab, (cx, cy), r + 2, MYELIN, -1)
            cv2.circle(lab, (cx, cy), r, AXON, -1)
        image = np.choose(lab, [0.5, 0.1, 0.9]) + rng.normal(0, 0.05, lab.shape)
        images.append(np.clip(image, 0, 1).astype(np.float32))
        labels.append(lab)
    return {
        "image": torch.from_numpy(np.stack(images))[:, None],
        "labels": torch.from_numpy(np.stack(labels)).long(),
    }


# ----------------------------------------------------------------------------------------------
# U-Net


def test_unet_shapes_and_size_check() -> None:
    net = UNet(TINY)
    assert net(torch.rand(2, 1, 32, 24)).shape == (2, 3, 32, 24)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 1, 30, 32))
    with pytest.raises(ValueError, match="norm"):
        UNet(UNetConfig(norm="group"))


def test_unet_channels_are_capped() -> None:
    net = UNet(
        UNetConfig(base_channels=8, max_channels=16, depth=4, norm="batch", deep_supervision=False)
    )
    assert [stage[0].out_channels for stage in net.encoder] == [8, 16, 16, 16]
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 3, 16, 16)


def test_deep_supervision_outputs_only_in_training() -> None:
    net = UNet(UNetConfig(base_channels=8, depth=4, deep_supervision=True))
    outs = net.train()(torch.rand(2, 1, 32, 32))
    assert [o.shape for o in outs] == [(2, 3, 32, 32), (2, 3, 16, 16), (2, 3, 8, 8)]
    assert net.eval()(torch.rand(2, 1, 32, 32)).shape == (2, 3, 32, 32)


# ----------------------------------------------------------------------------------------------
# Loss


def test_loss_is_zero_for_confident_correct_logits() -> None:
    labels = toy_batch(2)["labels"]
    onehot = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    assert dice_ce_loss(50 * onehot, labels).item() == pytest.approx(0, abs=1e-4)
    wrong = dice_ce_loss(50 * onehot.roll(1, dims=1), labels).item()
    assert wrong > 10
    assert dice_ce_loss(torch.zeros_like(onehot), labels).item() > 1


def test_deep_supervision_loss_weights_scales() -> None:
    labels = toy_batch(2)["labels"]
    onehot = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    full, half = 50 * onehot, 50 * onehot[:, :, ::2, ::2]
    assert deep_supervision_loss([full, half], labels).item() == pytest.approx(0, abs=1e-4)
    assert deep_supervision_loss(full, labels) == dice_ce_loss(full, labels)
    bad_half = dice_ce_loss(torch.zeros_like(half), labels[:, ::2, ::2])
    mixed = deep_supervision_loss([full, torch.zeros_like(half)], labels)
    assert mixed.item() == pytest.approx(bad_half.item() / 3, rel=1e-4)  # weights 2/3, 1/3


def test_ignored_pixels_weigh_nothing_in_the_loss() -> None:
    """Pixels labelled IGNORE (a teacher's unsure ones) neither add to the loss nor get a
    gradient, at every deep-supervision scale; the loss of the others is unchanged."""
    labels = toy_batch(2)["labels"]
    masked = labels.clone()
    masked[:, :, :16] = IGNORE
    torch.manual_seed(0)
    full = torch.randn(2, 3, 32, 32, requires_grad=True)
    half = torch.randn(2, 3, 16, 16, requires_grad=True)
    deep_supervision_loss([full, half], masked, ignore=IGNORE).backward()
    assert full.grad[..., :16].abs().max() == 0 and full.grad[..., 16:].abs().max() > 0
    assert half.grad[..., :8].abs().max() == 0 and half.grad[..., 8:].abs().max() > 0
    # only the kept half counts: the same as the loss of that half alone
    logits = torch.randn(2, 3, 32, 32)
    expected = dice_ce_loss(logits[..., 16:], labels[..., 16:])
    ignored = dice_ce_loss(logits, masked, ignore=IGNORE)
    assert ignored.item() == pytest.approx(expected.item(), rel=1e-5)
    everything = torch.full_like(labels, IGNORE)
    assert torch.isfinite(dice_ce_loss(logits, everything, ignore=IGNORE))


# ----------------------------------------------------------------------------------------------
# Dice


def test_dice_per_class_exact_values() -> None:
    target = np.array([[2, 2, 2, 0], [1, 1, 0, 0]], np.uint8)
    pred = np.array([[2, 2, 0, 2], [1, 0, 0, 0]], np.uint8)
    # axon: |P∩T| = 2, |P| = |T| = 3; myelin: 1, |P| = 1, |T| = 2
    assert dice_per_class(pred, target) == pytest.approx({"axon": 4 / 6, "myelin": 2 / 3})
    no_myelin = np.where(target == MYELIN, 0, target).astype(np.uint8)
    assert dice_per_class(no_myelin, no_myelin) == {"axon": 1.0, "myelin": 1.0}
    assert dice_per_class(np.zeros_like(target), target) == {"axon": 0.0, "myelin": 0.0}
    with pytest.raises(ValueError, match="shape"):
        dice_per_class(pred, target[:, :3])


def test_dice_scores_match_torchmetrics_where_defined() -> None:
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.integers(0, 3, (4, 16, 16)))
    pred = torch.from_numpy(rng.integers(0, 3, (4, 16, 16)))
    pred[0], target[0] = 0, 0  # both classes absent from both: NaN in torchmetrics, 1 here
    ours = dice_scores(pred, target)
    metric = DiceScore(
        num_classes=3, input_format="index", include_background=False, average="none"
    )
    for i in range(1, 4):  # per sample, as (myelin, axon)
        torch.testing.assert_close(ours[i].float(), metric(pred[i : i + 1], target[i : i + 1]))
    assert ours[0].tolist() == [1.0, 1.0]


def test_dice_leaves_ignored_pixels_out() -> None:
    target = np.array([[2, 2, IGNORE, IGNORE], [1, 1, 0, 0]], np.uint8)
    pred = np.array([[2, 2, 2, 1], [1, 1, 0, 0]], np.uint8)
    assert dice_per_class(pred, target) == {"axon": 1.0, "myelin": 1.0}


# ----------------------------------------------------------------------------------------------
# Inference


def test_predict_image_matches_whole_image_forward() -> None:
    torch.manual_seed(0)
    model = Segmenter(SegmenterConfig(unet=UNetConfig(base_channels=4, depth=2))).train()
    image = np.random.default_rng(0).random((37, 50), dtype=np.float32)
    labels = model.predict_image(image, tile=16, overlap=4, batch_size=3)
    assert labels.shape == (37, 50) and labels.dtype == np.uint8
    assert model.training  # mode restored

    # A 1x1 conv is fully convolutional, so tiling must reproduce the whole-image argmax:
    # class 0 where x < 0.4, 1 in between, 2 where x > 0.6.
    model.net = torch.nn.Conv2d(1, 3, 1)
    with torch.no_grad():
        model.net.weight.copy_(torch.tensor([-5.0, 0.0, 5.0])[:, None, None, None])
        model.net.bias.copy_(torch.tensor([-1.0, 0.0, -1.0]))
    image = image[:32, :48]
    shift, scale = intensity_stats(image, model.cfg.normalize)  # each image by its own stats
    with torch.no_grad():
        x = torch.from_numpy((image - shift) / scale)[None, None]
        whole = model.probabilities(x).argmax(1)[0].numpy()
    assert set(np.unique(whole)) == {0, 1, 2}
    np.testing.assert_array_equal(model.predict_image(image, 16, 4, 4), whole)
    constant = model.predict_image(np.full((40, 40), 0.3, np.float32), 16, 4)
    assert len(np.unique(constant)) == 1
    assert model.window == "gaussian" and model.tta_flips  # nnU-Net's inference


# ----------------------------------------------------------------------------------------------
# Training


def test_tiny_unet_learns_toy_disks() -> None:
    torch.manual_seed(0)
    model = Segmenter(SegmenterConfig(unet=TINY))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch, held_out = toy_batch(8), toy_batch(4, seed=1)
    losses = []
    for _ in range(30):
        loss = deep_supervision_loss(model(batch["image"]), batch["labels"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        pred = model.eval()(held_out["image"]).argmax(1)
    myelin, axon = dice_scores(pred, held_out["labels"]).mean(0).tolist()
    assert axon > 0.8 and myelin > 0.7


def test_lightning_fit_logs_validation_dice(tmp_path: Path) -> None:
    batch = toy_batch(4)
    items = [{"image": batch["image"][i], "labels": batch["labels"][i]} for i in range(4)]
    cfg = SegmenterConfig(unet=UNetConfig(base_channels=4, depth=3, deep_supervision=True))
    model = Segmenter(cfg)
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(items, batch_size=2), DataLoader(items, batch_size=2))
    metrics = trainer.callback_metrics
    assert {"train/loss", "val/dice_axon", "val/dice_myelin", "val/dice_mean"} <= set(metrics)
    assert 0 <= metrics["val/dice_axon"] <= 1
    mean = (metrics["val/dice_axon"] + metrics["val/dice_myelin"]) / 2
    assert metrics["val/dice_mean"] == pytest.approx(mean.item())
    assert trainer.lr_scheduler_configs[0].interval == "epoch"

    trainer.save_checkpoint(tmp_path / "seg.ckpt")
    loaded = Segmenter.load_from_checkpoint(tmp_path / "seg.ckpt", weights_only=True)
    assert loaded.cfg == cfg
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())


def test_bf16_prediction_stays_near_fp32_and_nnunet_keeps_its_own() -> None:
    """segmenter.predict.precision=bf16: the network under bf16 autocast, probabilities still
    fp32 and within 0.05 of fp32's; refused for nnU-Net, whose predictor sets its own."""
    from conftest import compose_cfg

    from axondeepsynth.errors import ConfigError

    torch.manual_seed(0)
    model = Segmenter(SegmenterConfig(unet=UNetConfig(base_channels=4, depth=2))).eval()
    image = np.random.default_rng(0).random((48, 40), dtype=np.float32)
    fp32 = model.predict_proba(image, 16, 4, 2)
    model.bf16 = True
    bf16 = model.predict_proba(image, 16, 4, 2)
    assert bf16.dtype == fp32.dtype == np.float32 and not np.array_equal(bf16, fp32)
    assert np.abs(bf16 - fp32).max() < 0.05
    with pytest.raises(ConfigError, match="nnU-Net's predictor sets its own precision"):
        compose_cfg("segmenter.backend=nnunet", "segmenter.predict.precision=bf16")
