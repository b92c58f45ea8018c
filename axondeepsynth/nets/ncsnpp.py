"""SynDiff's diffusive generator: NCSN++ with adaptive group norm (DDGAN's ``NCSNpp``).

The network predicts ``x_0`` from ``[x_tp1, source]`` given the time step ``t`` and a latent
``z``. The variant SynDiff trains is fixed here: BigGAN residual blocks with FIR [1,3,3,1]
resampling, skip rescaling by 1/sqrt(2), sinusoidal time embedding, a 'residual' input pyramid,
no output pyramid (``progressive='none'``), inputs already centred in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from axondeepsynth.nets.config import NCSNppConfig
from axondeepsynth.nets.layers import (
    AdaptiveGroupNorm,
    FirDownConv2d,
    FirDownsample,
    FirUpsample,
    Recomputable,
    conv2d,
    linear,
    timestep_embedding,
)

SQRT_HALF = 1 / math.sqrt(2)


class SelfAttention2d(nn.Module):
    """Single-head self-attention over all pixels, ``(x + attn(x)) / sqrt(2)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-6)
        self.q, self.k, self.v = (conv2d(channels, channels, 1, init_scale=0.1) for _ in range(3))
        self.proj = conv2d(channels, channels, 1, init_scale=0.0)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (f(y).flatten(2).transpose(1, 2) for f in (self.q, self.k, self.v))  # (B, HW, C)
        y = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(C)) v
        y = y.transpose(1, 2).reshape(b, c, h, w)
        return (x + self.proj(y)) * SQRT_HALF


class ResBlock(Recomputable):
    """BigGAN residual block with AdaGN(z), an additive time bias and optional FIR resampling.

    ``h = conv1(act(AdaGN(conv0(resample(act(AdaGN(x)))) + dense(act(t_emb)))))``,
    ``out = (skip(resample(x)) + h) / sqrt(2)``, then self-attention if ``attention``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        t_emb_dim: int,
        z_emb_dim: int,
        *,
        up: bool = False,
        down: bool = False,
        attention: bool = False,
        dropout: float = 0.0,
        fir_kernel: tuple[int, ...] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.up = up
        self.norm0 = AdaptiveGroupNorm(in_ch, z_emb_dim)
        if up:
            self.resample = FirUpsample(fir_kernel)
        elif down:
            self.resample = FirDownsample(fir_kernel)
        else:
            self.resample = nn.Identity()
        self.conv0 = conv2d(in_ch, out_ch, 3)
        self.t_proj = linear(t_emb_dim, out_ch)
        self.norm1 = AdaptiveGroupNorm(out_ch, z_emb_dim)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = conv2d(out_ch, out_ch, 3, init_scale=0.0)
        self.skip = conv2d(in_ch, out_ch, 1) if in_ch != out_ch or up or down else nn.Identity()
        self.attn = SelfAttention2d(out_ch) if attention else nn.Identity()

    def forward(self, x: Tensor, t_emb: Tensor, z_emb: Tensor) -> Tensor:
        h = self.resample(F.silu(self.norm0(x, z_emb)))
        x = self.resample(x)
        h = self.conv0(h) + self.t_proj(F.silu(t_emb))[:, :, None, None]
        h = self.conv1(self.dropout(F.silu(self.norm1(h, z_emb))))
        return self.attn((self.skip(x) + h) * SQRT_HALF)


class MappingNetwork(nn.Module):
    """StyleGAN-style z mapping: pixel norm, then ``1 + n_mlp`` dense + SiLU layers."""

    def __init__(self, nz: int, z_emb_dim: int, n_mlp: int) -> None:
        super().__init__()
        dims = [nz] + [z_emb_dim] * (n_mlp + 1)
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            layers += [linear(d_in, d_out, fan="out"), nn.SiLU()]
        self.mlp = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        return self.mlp(z)


class NCSNpp(nn.Module):
    """U-Net ``G(x, t, z)``: (B, C, H, W), (B,) int, (B, nz) -> (B, C, H, W).

    Inputs are expected in [-1, 1]; the output is ``tanh``-bounded unless ``not_use_tanh``.
    SynDiff feeds ``x = [x_tp1, source]`` and reads ``x_0`` from output channel 0.
    """

    def __init__(self, cfg: NCSNppConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or NCSNppConfig()
        self.cfg = cfg
        nf, t_dim, z_dim = cfg.num_channels_dae, 4 * cfg.num_channels_dae, cfg.z_emb_dim

        def block(in_ch: int, out_ch: int, **kw: bool) -> ResBlock:
            return ResBlock(
                in_ch, out_ch, t_dim, z_dim, dropout=cfg.dropout, fir_kernel=cfg.fir_kernel, **kw
            )

        self.z_transform = MappingNetwork(cfg.nz, z_dim, cfg.n_mlp)
        self.t_embed = nn.Sequential(linear(nf, t_dim), nn.SiLU(), linear(t_dim, t_dim))
        self.conv_in = conv2d(cfg.num_channels, nf, 3)

        # Encoder: every block output is kept as a skip. Each downsampling block is followed by
        # the input pyramid: the previous pyramid level, FIR-downsampled by a strided conv, is
        # added to it, and the sum becomes both the new pyramid level and the skip.
        self.enc = nn.ModuleList()
        self.pyramid = nn.ModuleDict()
        skips, ch, pyramid_ch = [nf], nf, cfg.num_channels
        for level, mult in enumerate(cfg.ch_mult):
            res = cfg.image_size >> level
            for _ in range(cfg.num_res_blocks):
                self.enc.append(block(ch, nf * mult, attention=res in cfg.attn_resolutions))
                ch = nf * mult
                skips.append(ch)
            if level < len(cfg.ch_mult) - 1:
                self.pyramid[str(len(self.enc))] = FirDownConv2d(pyramid_ch, ch, cfg.fir_kernel)
                self.enc.append(block(ch, ch, down=True))
                skips.append(ch)
                pyramid_ch = ch

        self.mid = nn.ModuleList([block(ch, ch, attention=True), block(ch, ch)])

        # Decoder: num_res_blocks + 1 blocks per level, each eating one skip; attention after the
        # last block of a level; an upsampling block between levels.
        self.dec = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.ch_mult))):
            res = cfg.image_size >> level
            for i in range(cfg.num_res_blocks + 1):
                attention = i == cfg.num_res_blocks and res in cfg.attn_resolutions
                self.dec.append(block(ch + skips.pop(), nf * mult, attention=attention))
                ch = nf * mult
            if level > 0:
                self.dec.append(block(ch, ch, up=True))

        self.norm_out = nn.GroupNorm(min(ch // 4, 32), ch, eps=1e-6)
        self.conv_out = conv2d(ch, cfg.num_channels, 3, init_scale=0.0)

    def forward(self, x: Tensor, t: Tensor, z: Tensor) -> Tensor:
        z_emb = self.z_transform(z)
        t_emb = timestep_embedding(t, self.cfg.num_channels_dae).to(self.conv_in.weight.dtype)
        t_emb = self.t_embed(t_emb)

        h = self.conv_in(x)
        hs, x_pyramid = [h], x
        for i, blk in enumerate(self.enc):
            h = blk(h, t_emb, z_emb)
            if str(i) in self.pyramid:
                h = x_pyramid = (self.pyramid[str(i)](x_pyramid) + h) * SQRT_HALF
            hs.append(h)

        for blk in self.mid:
            h = blk(h, t_emb, z_emb)

        for blk in self.dec:
            h = blk(h if blk.up else torch.cat([h, hs.pop()], dim=1), t_emb, z_emb)

        h = self.conv_out(F.silu(self.norm_out(h)))
        return h if self.cfg.not_use_tanh else torch.tanh(h)
