"""The segmentation proxy: a plain 2-D U-Net in the nnU-Net style.

Each stage is `convs_per_stage` x (3x3 conv, instance/batch norm, LeakyReLU(0.01)); the first
conv of every encoder stage but the top one has stride 2. The decoder upsamples with 2x2
transposed convs, concatenates the skip and applies one stage of convs; 1x1 heads give logits.
Channels double per stage from `base_channels`, capped at `max_channels`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from axondeepsynth.nets.config import UNetConfig
from axondeepsynth.nets.layers import instance_norm

NORMS = {"instance": lambda ch: instance_norm(ch, affine=True), "batch": nn.BatchNorm2d}


def stage(in_ch: int, out_ch: int, n_convs: int, stride: int, norm: str) -> nn.Sequential:
    """`n_convs` x (conv3x3, norm, LeakyReLU); only the first conv is strided."""
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [
            nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, stride if i == 0 else 1, 1),
            NORMS[norm](out_ch),
            nn.LeakyReLU(0.01, inplace=True),
        ]
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """`(B, in_channels, H, W) -> (B, num_classes, H, W)` logits.

    In training mode with `deep_supervision`, returns a list of logits for every decoder stage,
    full resolution first, then H/2, H/4, ... down to H / 2**(depth - 2).
    H and W must be divisible by `2 ** (depth - 1)`.
    """

    def __init__(self, cfg: UNetConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or UNetConfig()
        if cfg.depth < 2:
            raise ValueError(f"U-Net depth must be at least 2, got {cfg.depth}")
        if cfg.norm not in NORMS:
            raise ValueError(f"unknown norm {cfg.norm!r}; choose one of {sorted(NORMS)}")
        self.cfg = cfg
        ch = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(cfg.depth)]
        n, norm = cfg.convs_per_stage, cfg.norm
        self.encoder = nn.ModuleList(
            stage(ch[i - 1] if i else cfg.in_channels, ch[i], n, 2 if i else 1, norm)
            for i in range(cfg.depth)
        )
        levels = range(cfg.depth - 2, -1, -1)  # decoder, deepest first
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[i + 1], ch[i], 2, 2) for i in levels)
        self.decoder = nn.ModuleList(stage(2 * ch[i], ch[i], n, 1, norm) for i in levels)
        n_heads = cfg.depth - 1 if cfg.deep_supervision else 1
        self.heads = nn.ModuleList(nn.Conv2d(ch[i], cfg.num_classes, 1) for i in range(n_heads))
        for m in self.modules():  # nnU-Net's He init for LeakyReLU
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, a=0.01)
                nn.init.zeros_(m.bias)

    @property
    def divisor(self) -> int:
        """Input sizes must be multiples of this."""
        return 2 ** (self.cfg.depth - 1)

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        h, w = x.shape[-2:]
        if h % self.divisor or w % self.divisor:
            raise ValueError(
                f"U-Net input {h}x{w} must be divisible by {self.divisor} "
                f"(2**(depth-1) with depth={self.cfg.depth})"
            )
        skips = []
        for enc in self.encoder:
            x = enc(x)
            skips.append(x)
        skips.pop()
        features = []  # decoder outputs, full resolution last
        for up, dec in zip(self.up, self.decoder, strict=True):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
            features.append(x)
        if self.training and self.cfg.deep_supervision:
            return [head(f) for head, f in zip(self.heads, reversed(features), strict=True)]
        return self.heads[0](features[-1])
