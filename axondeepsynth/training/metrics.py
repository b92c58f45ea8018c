"""Translation quality per image: SSIM, PSNR and L1 on [0, 1] images, mean ± std over images."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)


def per_image(preds: Tensor, target: Tensor) -> dict[str, Tensor]:
    """SSIM, PSNR (data_range 1) and L1 of each image in a [B, 1, H, W] batch."""
    preds, target = preds.float(), target.float()
    return {
        "ssim": structural_similarity_index_measure(
            preds, target, data_range=1.0, reduction="none"
        ),
        "psnr": peak_signal_noise_ratio(
            preds, target, data_range=1.0, reduction="none", dim=(1, 2, 3)
        ),
        "l1": (preds - target).abs().flatten(1).mean(1),
    }


class TranslationMetrics:
    """Collects per-image scores under names like `cycle_l`; computes `val/<name>/<metric>`."""

    def __init__(self) -> None:
        self.values: dict[str, list[Tensor]] = defaultdict(list)

    def update(self, name: str, preds: Tensor, target: Tensor) -> None:
        for metric, value in per_image(preds, target).items():
            self.values[f"{name}/{metric}"].append(value.detach())

    def compute(self, gather: Callable[[Tensor], Tensor] | None = None) -> dict[str, float]:
        """Mean and std over all images (of all ranks when `gather` is LightningModule's)."""
        out = {}
        for key, chunks in sorted(self.values.items()):
            v = torch.cat(chunks)
            v = gather(v).flatten() if gather else v
            out[f"val/{key}"] = v.mean().item()
            out[f"val/{key}_std"] = v.std().item() if v.numel() > 1 else 0.0
        return out

    def reset(self) -> None:
        self.values.clear()
