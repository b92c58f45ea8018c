"""SynDiff's few-step diffusion (T=4, DDGAN-style): forward pairs, posterior, reverse sampler.

Time runs over t = 0..T-1 for the pairs (x_t, x_tp1). The variance schedule is the VP-SDE's,
var(s) = 1 - exp(-s^2 (beta_max - beta_min) / 2 - s beta_min) on s in [eps, 1] (or geometric),
discretised to T steps; index 0 of the forward coefficients is a near-zero step (beta = 1e-8).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from axondeepsynth.nets.config import DiffusionConfig

EPS_SMALL = 1e-3


def betas_schedule(cfg: DiffusionConfig) -> Tensor:
    """beta_0..beta_T (float32), beta_0 = 1e-8, from the continuous variance schedule."""
    s = torch.arange(cfg.num_timesteps + 1, dtype=torch.float64) / cfg.num_timesteps
    s = s * (1.0 - EPS_SMALL) + EPS_SMALL
    if cfg.use_geometric:
        var = cfg.beta_min * (cfg.beta_max / cfg.beta_min) ** s
    else:
        log_mean = -0.25 * s**2 * (cfg.beta_max - cfg.beta_min) - 0.5 * s * cfg.beta_min
        var = 1.0 - torch.exp(2.0 * log_mean)
    alpha_bars = 1.0 - var
    betas = 1.0 - alpha_bars[1:] / alpha_bars[:-1]
    return torch.cat([torch.tensor([1e-8], dtype=torch.float64), betas]).float()


def _at(coef: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """coef[t] shaped to broadcast over a batch of images like x."""
    return coef.to(x.dtype)[t].view(-1, *([1] * (x.dim() - 1)))


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class Diffusion(nn.Module):
    """Coefficients as non-persistent buffers, so they follow the module's device."""

    def __init__(self, cfg: DiffusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        betas = betas_schedule(cfg)
        # forward process, indices 0..T
        a_s = torch.sqrt(1.0 - betas)
        a_s_cum = torch.cumprod(a_s, 0)
        self.register_buffer("sigmas", betas.sqrt(), persistent=False)
        self.register_buffer("a_s", a_s, persistent=False)
        self.register_buffer("a_s_cum", a_s_cum, persistent=False)
        self.register_buffer("sigmas_cum", torch.sqrt(1.0 - a_s_cum**2), persistent=False)
        # posterior q(x_t | x_0, x_tp1), indices 0..T-1 (beta_0 dropped)
        b = betas[1:]
        alphas_cum = torch.cumprod(1.0 - b, 0)
        alphas_cum_prev = torch.cat([torch.ones(1), alphas_cum[:-1]])
        post_var = b * (1.0 - alphas_cum_prev) / (1.0 - alphas_cum)
        self.register_buffer(
            "post_coef_x0", b * alphas_cum_prev.sqrt() / (1.0 - alphas_cum), persistent=False
        )
        self.register_buffer(
            "post_coef_xtp1",
            (1.0 - alphas_cum_prev) * (1.0 - b).sqrt() / (1.0 - alphas_cum),
            persistent=False,
        )
        self.register_buffer("post_log_var", post_var.clamp(min=1e-20).log(), persistent=False)

    @property
    def num_timesteps(self) -> int:
        return self.cfg.num_timesteps

    def q_sample_pairs(
        self, x_0: Tensor, t: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw (x_t, x_tp1) ~ q(x_t | x_0) q(x_tp1 | x_t) (noise drawn in the reference order)."""
        noise, noise_t = (_randn_like(x_0, generator) for _ in range(2))
        x_t = _at(self.a_s_cum, t, x_0) * x_0 + _at(self.sigmas_cum, t, x_0) * noise_t
        x_tp1 = _at(self.a_s, t + 1, x_0) * x_t + _at(self.sigmas, t + 1, x_0) * noise
        return x_t, x_tp1

    def sample_posterior(
        self, x_0: Tensor, x_tp1: Tensor, t: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw x_t ~ q(x_t | x_0, x_tp1); deterministic (the mean) at t = 0."""
        mean = _at(self.post_coef_x0, t, x_0) * x_0 + _at(self.post_coef_xtp1, t, x_0) * x_tp1
        noise = torch.randn(
            x_tp1.shape, generator=generator, device=x_tp1.device, dtype=x_tp1.dtype
        )
        nonzero = (t != 0).to(x_tp1.dtype).view(-1, *([1] * (x_tp1.dim() - 1)))
        return mean + nonzero * torch.exp(0.5 * _at(self.post_log_var, t, x_0)) * noise

    @torch.no_grad()
    def sample(
        self,
        denoise: Callable[[Tensor, Tensor, Tensor], Tensor],
        source: Tensor,
        nz: int,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Run the T reverse steps from noise, conditioned on `source`.

        `denoise(x, t, z)` maps [x_tp1, source] to x_0 (channel 0 is used).
        """
        b, device, dtype = source.shape[0], source.device, source.dtype
        x = _randn_like(source, generator)
        for i in reversed(range(self.num_timesteps)):
            t = torch.full((b,), i, dtype=torch.long, device=device)
            z = torch.randn(b, nz, generator=generator, device=device, dtype=dtype)
            x_0 = denoise(torch.cat([x, source], dim=1), t, z)[:, :1]
            x = self.sample_posterior(x_0, x, t, generator)
        return x
