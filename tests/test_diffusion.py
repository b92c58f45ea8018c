"""The T=4 diffusion: schedule, forward pairs and posterior against their closed forms."""

from __future__ import annotations

import numpy as np
import torch

from axondeepsynth.nets.diffusion import Diffusion, DiffusionConfig, betas_schedule


def test_schedule_matches_vp_sde_closed_form() -> None:
    s = np.arange(5) / 4 * (1 - 1e-3) + 1e-3
    var = 1 - np.exp(2 * (-0.25 * s**2 * (20 - 0.1) - 0.5 * s * 0.1))
    alpha_bars = 1 - var
    expected = np.concatenate([[1e-8], 1 - alpha_bars[1:] / alpha_bars[:-1]])
    np.testing.assert_allclose(betas_schedule(DiffusionConfig()).numpy(), expected, rtol=1e-6)
    # x_T is almost pure noise: signal coefficient of x_4 given x_0
    assert Diffusion(DiffusionConfig()).a_s_cum[-1] < 0.01


def test_q_sample_pairs_statistics() -> None:
    torch.manual_seed(0)
    d = Diffusion(DiffusionConfig())
    x_0 = torch.full((20000, 1, 1, 1), 0.5)
    for step in range(4):
        t = torch.full((20000,), step)
        x_t, x_tp1 = d.q_sample_pairs(x_0, t)
        assert abs(x_t.mean() - 0.5 * d.a_s_cum[step]) < 0.02
        assert abs(x_t.std() - d.sigmas_cum[step]) < 0.02
        assert abs(x_tp1.mean() - 0.5 * d.a_s_cum[step + 1]) < 0.02
        assert abs(x_tp1.std() - d.sigmas_cum[step + 1]) < 0.02


def test_posterior_at_t0_returns_x0_and_sampler_runs_t_steps() -> None:
    d = Diffusion(DiffusionConfig())
    x_0, x_tp1 = torch.rand(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    out = d.sample_posterior(x_0, x_tp1, torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(out, x_0)
    calls = []

    def denoise(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        calls.append(int(t[0]))
        assert x.shape[1] == 2 and z.shape == (3, 5)
        return torch.full_like(x, 0.25)

    sample = d.sample(denoise, torch.zeros(3, 1, 4, 4), nz=5)
    assert calls == [3, 2, 1, 0]
    torch.testing.assert_close(sample, torch.full_like(sample, 0.25))  # last step is the mean
