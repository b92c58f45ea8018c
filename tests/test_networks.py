"""SynDiff networks: reference parameter counts, exact FIR resampling, tiny forward passes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from axondeepsynth.nets.discriminators import (
    PatchDiscriminator,
    PatchDiscriminatorConfig,
    TimeDiscriminator,
    TimeDiscriminatorConfig,
)
from axondeepsynth.nets.layers import (
    AdaptiveGroupNorm,
    FirDownConv2d,
    FirDownsample,
    FirUpsample,
    instance_norm,
    timestep_embedding,
    upfirdn2d,
)
from axondeepsynth.nets.ncsnpp import NCSNpp, NCSNppConfig
from axondeepsynth.nets.resnet import ResnetGenerator, ResnetGeneratorConfig


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ----------------------------------------------------------------------------------------------
# Parameter counts of the reference (icon-lab/SynDiff) at its default configuration


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (NCSNpp, 39_725_250),
        (ResnetGenerator, 7_825_153),
        (TimeDiscriminator, 27_736_705),
        (PatchDiscriminator, 2_762_689),
    ],
    ids=["ncsnpp", "resnet", "time_disc", "patch_disc"],
)
def test_reference_parameter_counts(make: type[nn.Module], expected: int) -> None:
    assert n_params(make()) == expected


# ----------------------------------------------------------------------------------------------
# FIR resampling against a naive zero-insert / pad / explicit 2-D convolution

# [1, 3, 3, 1] outer [1, 3, 3, 1], written out; sums to 64.
K1331 = np.array([[1, 3, 3, 1], [3, 9, 9, 3], [3, 9, 9, 3], [1, 3, 3, 1]], dtype=np.float64)


def naive_upfirdn(x: np.ndarray, k: np.ndarray, up: int, down: int, pad: tuple[int, int]):
    """(C, H, W) -> zero insertion, zero padding, true 2-D convolution, subsampling."""
    c, h, w = x.shape
    u = np.zeros((c, h * up, w * up))
    u[:, ::up, ::up] = x
    u = np.pad(u, ((0, 0), pad, pad))
    kf = k[::-1, ::-1]  # convolution = correlation with the flipped kernel
    kh, kw = k.shape
    out = np.zeros((c, u.shape[1] - kh + 1, u.shape[2] - kw + 1))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[:, i, j] = (u[:, i : i + kh, j : j + kw] * kf).sum(axis=(1, 2))
    return out[:, ::down, ::down]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fir_upsample_exact(dtype: torch.dtype) -> None:
    x = torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = FirUpsample((1, 3, 3, 1))(x.to(dtype))
    assert y.shape == (2, 3, 16, 12)
    ref = np.stack([naive_upfirdn(xi, K1331 * 4 / 64, 2, 1, (2, 1)) for xi in x.numpy()])
    np.testing.assert_allclose(y.double().numpy(), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fir_downsample_exact(dtype: torch.dtype) -> None:
    x = torch.randn(2, 3, 8, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = FirDownsample((1, 3, 3, 1))(x.to(dtype))
    assert y.shape == (2, 3, 4, 6)
    ref = np.stack([naive_upfirdn(xi, K1331 / 64, 1, 2, (1, 1)) for xi in x.numpy()])
    np.testing.assert_allclose(y.double().numpy(), ref, atol=1e-6, rtol=0)


def test_upfirdn2d_flips_an_asymmetric_kernel_at_any_padding() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 5, 7, generator=g, dtype=torch.float64)
    k = torch.randn(4, 3, generator=g, dtype=torch.float64)
    # pads the convolutions' own padding covers, and ones it crops or extends on one side
    for up, down, pad in [
        (1, 1, (1, 2)), (2, 1, (2, 1)), (1, 2, (2, 2)), (1, 2, (0, 3)),
        (2, 1, (0, 0)), (2, 1, (4, 3)), (3, 1, (1, 1)),
    ]:  # fmt: skip
        y = upfirdn2d(x, k, up=up, down=down, pad=pad)
        ref = naive_upfirdn(x[0].numpy(), k.numpy(), up, down, pad)
        np.testing.assert_allclose(y[0].numpy(), ref, atol=1e-12, rtol=0)


def test_upfirdn2d_runs_in_fp32_under_cpu_autocast() -> None:
    """oneDNN's bf16 depthwise convolution is the slow one on a CPU: autocast must not reach it."""
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4)).bfloat16()
    k = torch.from_numpy(K1331).float() / 64
    for up, down, pad in [(1, 2, (1, 1)), (2, 1, (2, 1))]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = upfirdn2d(x, k * up**2, up=up, down=down, pad=pad)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, upfirdn2d(x.float(), k * up**2, up=up, down=down, pad=pad))


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_adaptive_group_norm_is_per_sample_scale_and_shift(channels_last: bool) -> None:
    """The batch folded into one group norm gives what the three ops give, gradients included."""
    torch.manual_seed(0)
    norm = AdaptiveGroupNorm(16, 8)
    with torch.no_grad():
        norm.style.weight.mul_(50)  # samples' gamma and beta far apart
    h = torch.randn(3, 16, 6, 5) * torch.arange(1.0, 4.0)[:, None, None, None]
    if channels_last:
        h = h.to(memory_format=torch.channels_last)
    h.requires_grad_(True)
    z_emb = torch.randn(3, 8)
    gamma, beta = norm.style(z_emb)[:, :, None, None].chunk(2, dim=1)
    ref = gamma * torch.nn.functional.group_norm(h, 4, eps=1e-6) + beta
    out = norm(h, z_emb)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(ref)
    params = [h, *norm.parameters()]
    expected = torch.autograd.grad(ref, params, grad)
    for got, want in zip(torch.autograd.grad(out, params, grad), expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_adaptive_group_norm_under_cpu_autocast_takes_either_input(dtype: torch.dtype) -> None:
    """Under autocast gamma is bf16; an fp32 input (FIR resampling stays fp32) gives fp32, as
    the three ops' type promotion would."""
    norm = AdaptiveGroupNorm(16, 8)
    h = torch.randn(2, 16, 6, 5, dtype=dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = norm(h, torch.randn(2, 8))
        gamma, beta = norm.style(torch.zeros(2, 8))[:, :, None, None].chunk(2, dim=1)
        ref_dtype = (gamma * h + beta).dtype
    assert out.dtype == ref_dtype == dtype
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_is_torchs_with_its_parameter_names(affine: bool) -> None:
    """Kept checkpoints (proxies, translators) load, and give the same numbers and gradients."""
    torch.manual_seed(0)
    ours, torchs = instance_norm(8, affine), nn.InstanceNorm2d(8, affine=affine)
    assert ours.state_dict().keys() == torchs.state_dict().keys()
    if affine:
        with torch.no_grad():
            torchs.weight.normal_(), torchs.bias.normal_()
        ours.load_state_dict(torchs.state_dict())
    x = (torch.randn(2, 8, 7, 9) * 3 + 1).requires_grad_(True)
    grad = torch.randn(2, 8, 7, 9)
    got, want = ours(x), torchs(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    params = [x, *ours.parameters()], [x, *torchs.parameters()]
    grads = (torch.autograd.grad(y, p, grad) for y, p in zip((got, want), params, strict=True))
    for g_ours, g_torch in zip(*grads, strict=True):
        torch.testing.assert_close(g_ours, g_torch, atol=1e-4, rtol=1e-4)


def test_fir_gain_preserves_constants() -> None:
    x = torch.full((1, 1, 8, 8), 3.0, dtype=torch.float64)
    np.testing.assert_allclose(FirUpsample()(x)[..., 2:-2, 2:-2].numpy(), 3.0, atol=1e-12)
    np.testing.assert_allclose(FirDownsample()(x)[..., 1:-1, 1:-1].numpy(), 3.0, atol=1e-12)


def test_fir_down_conv_is_blur_then_strided_conv() -> None:
    layer = FirDownConv2d(3, 5).double()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    blurred = np.stack([naive_upfirdn(xi, K1331 / 64, 1, 1, (2, 2)) for xi in x.numpy()])
    ref = torch.nn.functional.conv2d(
        torch.from_numpy(blurred), layer.conv.weight, layer.conv.bias, stride=2
    )
    y = layer(x)
    assert y.shape == (2, 5, 4, 4)
    np.testing.assert_allclose(y.detach().numpy(), ref.detach().numpy(), atol=1e-12, rtol=0)


def test_timestep_embedding_formula() -> None:
    t = torch.tensor([0, 1, 3])
    emb = timestep_embedding(t, 8)
    angles = t.numpy()[:, None] * np.exp(-math.log(10_000) * np.arange(4) / 3)
    ref = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    np.testing.assert_allclose(emb.numpy(), ref, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Tiny networks: shapes, ranges, every parameter receives a gradient, channels_last, bf16

B = 2


def tiny_ncsnpp() -> tuple[nn.Module, tuple[torch.Tensor, ...], tuple[int, ...]]:
    cfg = NCSNppConfig(
        image_size=32,
        num_channels_dae=16,
        ch_mult=(1, 2, 2),
        attn_resolutions=(16,),
        nz=8,
        z_emb_dim=32,
    )
    x = torch.randn(B, 2, 32, 32)  # [x_tp1, source]
    t = torch.randint(0, 4, (B,))
    z = torch.randn(B, cfg.nz)
    return NCSNpp(cfg), (x, t, z), (B, 2, 32, 32)


def tiny_resnet() -> tuple[nn.Module, tuple[torch.Tensor, ...], tuple[int, ...]]:
    net = ResnetGenerator(ResnetGeneratorConfig(ngf=8, n_blocks=2))
    return net, (torch.randn(B, 1, 32, 32),), (B, 1, 32, 32)


def tiny_time_disc(batch: int = 4) -> tuple[nn.Module, tuple[torch.Tensor, ...], tuple[int, ...]]:
    net = TimeDiscriminator(TimeDiscriminatorConfig(ngf=8, ch_mult=(2, 4, 8), t_emb_dim=32))
    x_t, x_tp1 = torch.randn(batch, 1, 32, 32), torch.randn(batch, 1, 32, 32)
    return net, (x_t, torch.randint(0, 4, (batch,)), x_tp1), (batch, 1)


def tiny_patch_disc() -> tuple[nn.Module, tuple[torch.Tensor, ...], tuple[int, ...]]:
    net = PatchDiscriminator(PatchDiscriminatorConfig(ndf=8))
    return net, (torch.randn(B, 1, 32, 32),), (B, 1, 2, 2)


TINY = [tiny_ncsnpp, tiny_resnet, tiny_time_disc, tiny_patch_disc]
IDS = ["ncsnpp", "resnet", "time_disc", "patch_disc"]


@pytest.mark.parametrize("make", TINY, ids=IDS)
def test_forward_shape_and_all_params_get_grads(make) -> None:
    torch.manual_seed(0)
    net, inputs, shape = make()
    out = net(*inputs)
    assert out.shape == shape
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient (DDP would fail): {missing}"


@pytest.mark.parametrize("make", [tiny_ncsnpp, tiny_resnet], ids=["ncsnpp", "resnet"])
def test_generators_output_in_tanh_range(make) -> None:
    torch.manual_seed(0)
    net, inputs, _ = make()
    out = net(*inputs)
    assert out.abs().max() < 1


def test_ncsnpp_without_tanh_is_unbounded_affine_head() -> None:
    net, (x, t, z), _ = tiny_ncsnpp()
    net.cfg.not_use_tanh = True
    with torch.no_grad():
        net.conv_out.bias.fill_(5.0)
    assert net(x, t, z).min() > 4


def test_time_disc_batch_of_one() -> None:  # SynDiff trains with batch size 1
    net, inputs, shape = tiny_time_disc(batch=1)
    assert net(*inputs).shape == shape


@pytest.mark.parametrize("make", TINY, ids=IDS)
def test_channels_last_matches_and_bf16_autocast_runs(make) -> None:
    torch.manual_seed(0)
    net, inputs, shape = make()
    net.eval()
    with torch.no_grad():
        ref = net(*inputs)
        net = net.to(memory_format=torch.channels_last)
        cl = [x.to(memory_format=torch.channels_last) if x.ndim == 4 else x for x in inputs]
        out = net(*cl)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf16 = net(*cl)
    assert out_bf16.shape == shape
    assert torch.isfinite(out_bf16).all()
