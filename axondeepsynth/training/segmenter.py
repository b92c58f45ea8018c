"""The segmentation proxy: a U-Net trained nnU-Net style on labelled tiles.

`forward` takes normalised images: each whole image is z-scored by its own mean and std
(nnU-Net's scheme for non-CT images; `normalize=fixed` maps [0, 1] to [-1, 1] instead), never a
tile by its own statistics, so every tile of an image sees the same mapping and a tile's input
does not depend on how much myelin it happens to hold. Whole images are predicted by
Gaussian-weighted sliding windows, averaged over mirrorings (`tta_flips`).

Dice is `2|P∩T| / (|P| + |T|)` per image and class, and 1 when the class is absent from both the
prediction and the target (torchmetrics' `DiceScore` returns NaN there): a correct "nothing here"
counts as perfect instead of being dropped or scored 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from axondeepsynth.data.labels import AXON, IGNORE, MYELIN
from axondeepsynth.data.stitch import sliding_window
from axondeepsynth.data.training_tiles import intensity_stats
from axondeepsynth.errors import check_finite
from axondeepsynth.nets.losses import deep_supervision_loss
from axondeepsynth.nets.unet import UNet
from axondeepsynth.schema import plain, structured
from axondeepsynth.training.config import SegmenterConfig

EVAL_CLASSES = {"myelin": MYELIN, "axon": AXON}
FLIPS: list[tuple[int, ...]] = [(), (-1,), (-2,), (-2, -1)]  # identity, h, v, both


def dice_scores(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image Dice [B, len(EVAL_CLASSES)] of label maps [B, H, W]; 1 where a class is absent;
    target pixels labelled `IGNORE` are left out."""
    classes = torch.tensor(list(EVAL_CLASSES.values()), device=pred.device)[:, None, None]
    p = (pred[:, None] == classes) & (target[:, None] != IGNORE)
    t = target[:, None] == classes
    intersect = (p & t).sum((2, 3)).double()
    total = p.sum((2, 3)) + t.sum((2, 3))
    return torch.where(total > 0, 2 * intersect / total.clamp_min(1), 1.0)


def dice_per_class(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Dice of one whole label map against its ground truth, keyed `myelin`, `axon`."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    p, t = (torch.from_numpy(np.ascontiguousarray(a))[None] for a in (pred, target))
    return dict(zip(EVAL_CLASSES, dice_scores(p, t)[0].tolist(), strict=True))


class Segmenter(pl.LightningModule):
    """U-Net segmenter: `forward` takes images in [0, 1] and returns logits."""

    def __init__(self, cfg: SegmenterConfig | dict | None = None) -> None:
        super().__init__()
        if isinstance(cfg, dict):  # a checkpoint's hyper-parameters
            # models saved before per-image normalisation mapped [0, 1] to [-1, 1]; those saved
            # before segmenter.predict recorded how they were applied (tta_flips, window)
            kept = {k: v for k, v in cfg.items() if k not in ("tta_flips", "window")}
            cfg = structured(SegmenterConfig, {"normalize": "fixed", **kept})
        self.cfg = cfg or SegmenterConfig()
        self.save_hyperparameters({"cfg": plain(self.cfg)})
        # how whole images are predicted (segmenter.predict's, set by `proxy.load`)
        self.tta_flips, self.window, self.bf16 = True, "gaussian", False
        self.net = UNet(self.cfg.unet)
        self.val_dice = nn.ModuleDict({name: MeanMetric() for name in EVAL_CLASSES})

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        return self.net(x)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = deep_supervision_loss(self(batch["image"]), batch["labels"], ignore=IGNORE)
        check_finite({"train/loss": loss.detach()}, batch_idx, self.current_epoch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        scores = dice_scores(self(batch["image"]).argmax(1), batch["labels"])
        for name, column in zip(EVAL_CLASSES, scores.T, strict=True):
            self.val_dice[name].update(column)

    def on_validation_epoch_end(self) -> None:
        dice = {name: metric.compute() for name, metric in self.val_dice.items()}
        dice["mean"] = sum(dice.values()) / len(EVAL_CLASSES)
        self.log_dict({f"val/dice_{name}": value for name, value in dice.items()}, prog_bar=True)
        for metric in self.val_dice.values():
            metric.reset()

    def configure_optimizers(self) -> dict:
        c, epochs = self.cfg, self.trainer.max_epochs
        if epochs is None or epochs < 1:
            raise ValueError("the poly LR schedule needs max_epochs >= 1")
        if c.optimizer == "sgd":
            opt = torch.optim.SGD(
                self.parameters(),
                lr=c.lr,
                momentum=c.momentum,
                nesterov=True,
                weight_decay=c.weight_decay,
            )
        elif c.optimizer == "adamw":
            opt = torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {c.optimizer!r}; choose sgd or adamw")
        poly = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda epoch: max(0.0, 1 - epoch / epochs) ** c.poly_exponent
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": poly, "interval": "epoch"}}

    def probabilities(self, x: Tensor) -> Tensor:
        """Softmax [B, C, H, W] of normalised images [B, 1, H, W], flip-averaged if `tta_flips`,
        the network under bf16 autocast if `bf16`."""
        flips = FLIPS if self.tta_flips else FLIPS[:1]
        with torch.autocast(x.device.type, torch.bfloat16, enabled=self.bf16):
            probs = [self(x.flip(d)).float().softmax(1).flip(d) for d in flips]
        return sum(probs) / len(flips)

    def predict_proba(
        self,
        image: np.ndarray,
        tile: int,
        overlap: int,
        batch_size: int = 8,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Class probabilities [C, H, W] of a whole HxW image in [0, 1]: tiled, blended softmax."""
        was_training = self.training
        self.eval()
        shift, scale = intensity_stats(image, self.cfg.normalize)
        try:
            with torch.inference_mode():
                return sliding_window(
                    (np.asarray(image, np.float32) - shift) / scale,
                    self.probabilities,
                    tile,
                    overlap,
                    batch_size,
                    self.device,
                    self.dtype,
                    on_batch,
                    self.window,
                )
        finally:
            self.train(was_training)

    def predict_image(
        self,
        image: np.ndarray,
        tile: int,
        overlap: int,
        batch_size: int = 8,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """uint8 label map of a whole HxW image: the argmax of `predict_proba`."""
        return (
            self.predict_proba(image, tile, overlap, batch_size, on_batch)
            .argmax(0)
            .astype(np.uint8)
        )
