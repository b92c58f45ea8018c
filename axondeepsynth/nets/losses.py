"""nnU-Net's segmentation loss: cross-entropy plus soft Dice, optionally deeply supervised.

Pixels labelled `ignore` (a label outside [0, C)) count in neither term, nor get a gradient.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def soft_dice(
    logits: Tensor, labels: Tensor, smooth: float = 1e-5, ignore: int | None = None
) -> Tensor:
    """Batch soft Dice of the foreground classes: sums over batch and pixels, mean over classes.

    `logits` [B, C, H, W], `labels` [B, H, W] int64 in [0, C) or `ignore`; class 0 is
    background.
    """
    probs = logits.float().softmax(dim=1)[:, 1:]
    if ignore is not None:  # ignored pixels become background, which the one-hot drops
        kept = labels != ignore
        probs, labels = probs * kept[:, None], labels.where(kept, 0)
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(probs.dtype)
    dims = (0, 2, 3)
    intersect = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    return ((2 * intersect + smooth) / (total + smooth).clamp_min(1e-8)).mean()


def dice_ce_loss(
    logits: Tensor, labels: Tensor, smooth: float = 1e-5, ignore: int | None = None
) -> Tensor:
    """`CE + (1 - soft Dice)`: 0 for a perfect, confident prediction."""
    if ignore is None:
        ce = F.cross_entropy(logits.float(), labels)
    else:  # the mean over the kept pixels, 0 where none is (where torch's own mean gives NaN)
        ce = F.cross_entropy(logits.float(), labels, ignore_index=ignore, reduction="sum")
        ce = ce / (labels != ignore).sum().clamp_min(1)
    return ce + 1 - soft_dice(logits, labels, smooth, ignore)


def deep_supervision_loss(
    outputs: Tensor | list[Tensor], labels: Tensor, ignore: int | None = None
) -> Tensor:
    """`dice_ce_loss` of each scale's logits (full resolution first), weighted `1 / 2**i`.

    Weights are normalised to sum to 1; labels are downsampled to each scale by nearest
    neighbour. A single tensor is just `dice_ce_loss`.
    """
    if isinstance(outputs, Tensor):
        return dice_ce_loss(outputs, labels, ignore=ignore)
    weights = [0.5**i for i in range(len(outputs))]
    total = 0.0
    for w, logits in zip(weights, outputs, strict=True):
        target = F.interpolate(labels[:, None].float(), size=logits.shape[-2:], mode="nearest")
        total = total + w * dice_ce_loss(logits, target[:, 0].long(), ignore=ignore)
    return total / sum(weights)
