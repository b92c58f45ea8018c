"""Building blocks shared by the SynDiff networks, in pure PyTorch.

Initialisers, FIR up/down-sampling (StyleGAN2's ``upfirdn2d`` as a depthwise convolution),
instance norm, the sinusoidal time embedding and adaptive group normalisation.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

Fan = Literal["avg", "out"]

# ----------------------------------------------------------------------------------------------
# Initialisation


def variance_scaling_(weight: Tensor, scale: float = 1.0, fan: Fan = "avg") -> Tensor:
    """Uniform init with variance ``scale / fan``; ``scale == 0`` means 1e-10 (near-zero layer).

    ``fan="avg"`` is the DDPM/NCSN++ ``default_init`` (mean of fan-in and fan-out); ``fan="out"``
    is what the reference's ``dense_layer`` ends up with (fan-out only), used by the mapping
    network, adaptive group norm and the time-conditioned discriminator.
    """
    receptive = weight[0][0].numel() if weight.ndim > 2 else 1
    fan_out, fan_in = weight.shape[0] * receptive, weight.shape[1] * receptive
    n = (fan_in + fan_out) / 2 if fan == "avg" else fan_out
    bound = math.sqrt(3 * (scale or 1e-10) / max(1.0, n))
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


def conv2d(
    in_ch: int,
    out_ch: int,
    kernel_size: int = 3,
    *,
    bias: bool = True,
    init_scale: float = 1.0,
    fan: Fan = "avg",
) -> nn.Conv2d:
    """Same-padded stride-1 convolution with variance-scaling weights and zero bias."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias)
    variance_scaling_(conv.weight, init_scale, fan)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


def linear(in_dim: int, out_dim: int, *, init_scale: float = 1.0, fan: Fan = "avg") -> nn.Linear:
    """Linear layer with variance-scaling weights and zero bias."""
    lin = nn.Linear(in_dim, out_dim)
    variance_scaling_(lin.weight, init_scale, fan)
    nn.init.zeros_(lin.bias)
    return lin


def normal_init_(net: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix/CycleGAN init: conv and linear weights ~ N(0, std), biases 0."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


# ----------------------------------------------------------------------------------------------
# FIR resampling


def fir_kernel(taps: tuple[int, ...], gain: float = 1.0) -> Tensor:
    """Separable 2-D FIR kernel ``outer(k, k)`` normalised to sum to ``gain``."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(k, k)
    return k * (gain / k.sum())


def upfirdn2d(
    x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> Tensor:
    """Upsample by zero insertion, zero-pad, convolve with ``kernel``, keep every ``down``-th pixel.

    The same ``pad = (before, after)`` applies to both spatial axes. Each channel is filtered
    separately (depthwise); the kernel is flipped so this is a true convolution, as in StyleGAN2.
    One depthwise convolution (transposed, to upsample) does all of it: its own padding takes
    what it can of ``pad``, so no zero-stuffed or padded copy of ``x`` is made. Under CPU
    autocast it runs in fp32: oneDNN's bf16 depthwise convolution is several times slower than
    its fp32 one, backward most of all (benchmarks/README.md).
    """
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return upfirdn2d(x.float(), kernel, up, down, pad)
    if up > 1 and down > 1:
        raise ValueError(f"upfirdn2d resamples one way: got up={up} and down={down}")
    c, (kh, kw) = x.shape[1], kernel.shape
    if up == 1:  # padding then a strided correlation with the flipped kernel
        inner = min(pad)
        x = _pad(x, [pad[0] - inner, pad[1] - inner] * 2)
        weight = kernel.flip(0, 1).to(x.dtype).expand(c, 1, kh, kw)
        return F.conv2d(x, weight, stride=down, padding=inner, groups=c)
    # conv_transpose2d zero-stuffs x, pads k - 1 zeros each side and correlates with the flipped
    # weight. We want pad[0] zeros before x and up - 1 + pad[1] after it: its padding q drops q
    # of its zeros each side, and F.pad (negative: crops) settles what q cannot.
    extra = [(k - 1 - pad[0], k - up - pad[1]) for k in (kh, kw)]  # its zeros beyond ours
    q = [max(0, min(e)) for e in extra]
    weight = kernel.to(x.dtype).expand(c, 1, kh, kw)
    y = F.conv_transpose2d(x, weight, stride=up, padding=q, groups=c)
    (h0, h1), (w0, w1) = ((qi - e0, qi - e1) for qi, (e0, e1) in zip(q, extra, strict=True))
    return _pad(y, [w0, w1, h0, h1])


def _pad(x: Tensor, pad: list[int]) -> Tensor:
    """``F.pad``, which copies even when every pad is 0, copying only when one is not."""
    return F.pad(x, pad) if any(pad) else x


class FirUpsample(nn.Module):
    """2x FIR upsampling (reference ``upsample_2d``, factor 2, gain 1)."""

    def __init__(self, taps: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain=4.0), persistent=False)
        p = len(taps) - 2
        self.pad = ((p + 1) // 2 + 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=2, pad=self.pad)


class FirDownsample(nn.Module):
    """2x FIR downsampling (reference ``downsample_2d``, factor 2, gain 1)."""

    def __init__(self, taps: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps), persistent=False)
        p = len(taps) - 2
        self.pad = ((p + 1) // 2, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, down=2, pad=self.pad)


class FirDownConv2d(nn.Module):
    """FIR blur followed by a stride-2 3x3 convolution (reference ``conv_downsample_2d``)."""

    def __init__(self, in_ch: int, out_ch: int, taps: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps), persistent=False)
        p = len(taps) - 2 + 2  # blur support minus stride, plus conv support minus one
        self.pad = ((p + 1) // 2, p // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=2)
        variance_scaling_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(upfirdn2d(x, self.kernel, pad=self.pad))


# ----------------------------------------------------------------------------------------------
# Normalisation


def instance_norm(channels: int, affine: bool = False) -> nn.GroupNorm:
    """Instance norm (eps 1e-5, no running statistics) as a group norm of one channel per group:
    the same numbers and parameter names as ``nn.InstanceNorm2d``, 2x faster on a CPU, backward
    included (PyTorch's instance norm goes through batch norm on a reshaped copy)."""
    return nn.GroupNorm(channels, channels, eps=1e-5, affine=affine)


# ----------------------------------------------------------------------------------------------
# Conditioning


def timestep_embedding(t: Tensor, dim: int, max_positions: int = 10_000) -> Tensor:
    """Sinusoidal embedding of (integer) time steps ``t`` of shape (B,) -> (B, dim).

    Frequencies ``exp(-log(max_positions) * i / (dim / 2 - 1))``; ``[sin, cos]`` halves.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_positions) / (half - 1) * torch.arange(half, device=t.device))
    angles = t.float()[:, None] * freqs[None]
    return F.pad(torch.cat([angles.sin(), angles.cos()], dim=1), (0, dim % 2))


class AdaptiveGroupNorm(nn.Module):
    """Group norm whose per-channel scale and shift are predicted from the latent embedding.

    ``AdaGN(h, z_emb) = gamma(z_emb) * GroupNorm(h) + beta(z_emb)``, with ``gamma`` starting at 1
    and ``beta`` at 0; ``min(channels // 4, 32)`` groups.

    The batch is folded into the channels, (B, C, H, W) -> (1, B * C, H, W) with B * groups
    groups, so each sample's gamma and beta become one group norm's own affine parameters: one
    fused kernel instead of a norm, a product and a sum (2-3x faster on a CPU, backward
    included). A channels_last batch would need a copy to fold, so it takes the three ops.
    """

    def __init__(self, channels: int, z_emb_dim: int) -> None:
        super().__init__()
        self.groups, self.eps = min(channels // 4, 32), 1e-6
        self.style = linear(z_emb_dim, 2 * channels, fan="out")
        with torch.no_grad():
            self.style.bias[:channels] = 1.0

    def forward(self, h: Tensor, z_emb: Tensor) -> Tensor:
        gamma, beta = self.style(z_emb).chunk(2, dim=1)  # (B, C) each
        b, c = gamma.shape
        if not h.is_contiguous():
            norm = F.group_norm(h, self.groups, eps=self.eps)
            return gamma[:, :, None, None] * norm + beta[:, :, None, None]
        # the dtype the three ops would give (fp32 h, bf16 gamma under CPU autocast: fp32)
        dtype = torch.promote_types(h.dtype, gamma.dtype)
        folded = h.reshape(1, b * c, *h.shape[2:]).to(dtype)
        weight, bias = (v.reshape(-1).to(dtype) for v in (gamma, beta))
        return F.group_norm(folded, b * self.groups, weight, bias, self.eps).view(h.shape)


class Recomputable(nn.Module):
    """A block that, with `recompute` set, recomputes its forward pass during backward instead
    of storing its activations: the same gradients for less memory (`set_recompute`)."""

    recompute = False

    def __call__(self, *args: Tensor) -> Tensor:
        if self.recompute and torch.is_grad_enabled():
            return checkpoint(super().__call__, *args, use_reentrant=False)
        return super().__call__(*args)


def set_recompute(net: nn.Module, on: bool) -> None:
    """Switch activation recomputation on or off for every `Recomputable` block of `net`."""
    for module in net.modules():
        if isinstance(module, Recomputable):
            module.recompute = on
