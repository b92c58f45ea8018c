"""SynDiff's discriminators.

``TimeDiscriminator`` (reference ``Discriminator_large``) scores a denoising step
``(x_t, t, x_tp1)`` for the diffusive module; ``PatchDiscriminator`` (reference
``NLayerDiscriminator``, 70x70 PatchGAN) scores single images for the non-diffusive module.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from axondeepsynth.nets.config import PatchDiscriminatorConfig, TimeDiscriminatorConfig
from axondeepsynth.nets.layers import (
    FirDownsample,
    Recomputable,
    conv2d,
    instance_norm,
    linear,
    normal_init_,
    timestep_embedding,
)

SLOPE = 0.2  # leaky-ReLU negative slope of both discriminators


class DownBlock(Recomputable):
    """Residual block halving the resolution with FIR filtering, with an additive time bias.

    ``h = conv2(down(act(conv1(act(x)) + dense(t_emb))))``, ``out = (h + skip(down(x))) / sqrt(2)``.
    """

    def __init__(
        self, in_ch: int, out_ch: int, t_emb_dim: int, fir_kernel: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.conv1 = conv2d(in_ch, out_ch, 3, fan="out")
        self.t_proj = linear(t_emb_dim, out_ch, fan="out")
        self.down = FirDownsample(fir_kernel)
        self.conv2 = conv2d(out_ch, out_ch, 3, init_scale=0.0, fan="out")
        self.skip = conv2d(in_ch, out_ch, 1, bias=False, fan="out")

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        h = self.conv1(F.leaky_relu(x, SLOPE)) + self.t_proj(t_emb)[:, :, None, None]
        h = self.conv2(self.down(F.leaky_relu(h, SLOPE)))
        return (h + self.skip(self.down(x))) / math.sqrt(2)


def minibatch_stddev(h: Tensor, group_size: int) -> Tensor:
    """Append one channel: the feature std across groups of samples, averaged over (C, H, W).

    Sample ``b`` is grouped with samples ``b mod (B / G)``; a batch of one gets sqrt(1e-8).
    """
    b, c, height, width = h.shape
    g = min(b, group_size)
    std = torch.sqrt(h.reshape(g, b // g, c, height, width).var(0, unbiased=False) + 1e-8)
    std = std.mean(dim=(1, 2, 3)).reshape(b // g, 1, 1, 1).repeat(g, 1, height, width)
    return torch.cat([h, std], dim=1)


class TimeDiscriminator(nn.Module):
    """``D(x_t, t, x_tp1) -> (B, 1)`` logits: is ``x_t`` a plausible denoising of ``x_tp1``?"""

    def __init__(self, cfg: TimeDiscriminatorConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or TimeDiscriminatorConfig()
        self.cfg = cfg
        d = cfg.t_emb_dim
        widths = [cfg.ngf * m for m in cfg.ch_mult]
        self.t_embed = nn.Sequential(
            linear(d, d, fan="out"), nn.LeakyReLU(SLOPE), linear(d, d, fan="out")
        )
        self.conv_in = conv2d(cfg.in_channels, widths[0], 1, fan="out")
        self.blocks = nn.ModuleList(
            DownBlock(w_in, w_out, d, cfg.fir_kernel)
            for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.conv_out = conv2d(widths[-1] + 1, widths[-1], 3, fan="out")
        self.linear_out = linear(widths[-1], 1, fan="out")

    def forward(self, x_t: Tensor, t: Tensor, x_tp1: Tensor) -> Tensor:
        t_emb = timestep_embedding(t, self.cfg.t_emb_dim).to(self.conv_in.weight.dtype)
        t_emb = F.leaky_relu(self.t_embed(t_emb), SLOPE)
        h = self.conv_in(torch.cat([x_t, x_tp1], dim=1))
        for blk in self.blocks:
            h = blk(h, t_emb)
        h = minibatch_stddev(h, self.cfg.stddev_group)
        h = F.leaky_relu(self.conv_out(h), SLOPE)
        return self.linear_out(h.sum(dim=(2, 3)))


class PatchDiscriminator(nn.Module):
    """PatchGAN ``(B, in_channels, H, W) -> (B, 1, H', W')`` logits (30x30 for 256x256 inputs).

    4x4 convs: ``n_layers`` of stride 2 then one of stride 1 (widths ``ndf * min(2**n, 8)``),
    instance norm without affine parameters (so every conv keeps its bias), leaky ReLU 0.2,
    and a final stride-1 conv to one channel. Weights ~ N(0, 0.02), biases 0.
    """

    def __init__(self, cfg: PatchDiscriminatorConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or PatchDiscriminatorConfig()
        self.cfg = cfg
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.in_channels, cfg.ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(SLOPE),
        ]
        ch = cfg.ndf
        for n in range(1, cfg.n_layers + 1):
            out_ch = cfg.ndf * min(2**n, 8)
            stride = 2 if n < cfg.n_layers else 1
            layers += [
                nn.Conv2d(ch, out_ch, 4, stride=stride, padding=1),
                instance_norm(out_ch),
                nn.LeakyReLU(SLOPE),
            ]
            ch = out_ch
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        normal_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
