"""The published SynDiff iteration, transcribed as it runs in icon-lab/SynDiff's train.py, on our
networks: the yardstick for speed (benchmarks) and for equal gradients (tests).

What it does that the mathematics does not need, kept on purpose: generator passes inside the
discriminator steps run with autograd (their gradients are computed, then zeroed); the
non-diffusive generators run three times (D step, PatchGAN step, G step); anomaly detection is
switched on in the generator step and stays on; separate backward passes per loss term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from axondeepsynth.training.translators import SynDiff


def _grads(params) -> list[Tensor]:
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]


def reference_iteration(
    m: SynDiff,
    x_l: Tensor,
    x_u: Tensor,
    gen: torch.Generator,
    opt_g: torch.optim.Optimizer | None = None,
    opt_d: torch.optim.Optimizer | None = None,
    anomaly: bool = True,
) -> dict[str, list[Tensor]]:
    """One published iteration (x in [-1, 1]); returns D and G gradients before their steps.

    Without optimisers nothing is updated, so both gradient sets are taken at the same point.
    """
    G, D, diff, nz = m.G, m.D, m.diffusion, m.cfg.net.diffusive.nz
    randint = lambda x: torch.randint(  # noqa: E731
        0, diff.num_timesteps, (x.shape[0],), generator=gen, device=x.device
    )
    z = lambda x: torch.randn(x.shape[0], nz, generator=gen, device=x.device)  # noqa: E731
    for p in D.parameters():
        p.requires_grad = True
    D["disc_l"].zero_grad()
    D["disc_u"].zero_grad()
    # --- diffusive discriminators
    t1, t2 = randint(x_l), randint(x_u)
    x1_t, x1_tp1 = diff.q_sample_pairs(x_l, t1, gen)
    x1_t.requires_grad = True
    x2_t, x2_tp1 = diff.q_sample_pairs(x_u, t2, gen)
    x2_t.requires_grad = True
    d1_real = D["disc_l"](x1_t, t1, x1_tp1.detach()).view(-1)
    d2_real = D["disc_u"](x2_t, t2, x2_tp1.detach()).view(-1)
    err_real = F.softplus(-d1_real).mean() + F.softplus(-d2_real).mean()
    err_real.backward(retain_graph=True)
    if m.batches_seen % m.cfg.train.lazy_reg == 0:
        (g1,) = torch.autograd.grad(d1_real.sum(), x1_t, create_graph=True)
        (g2,) = torch.autograd.grad(d2_real.sum(), x2_t, create_graph=True)
        penalty = (
            g1.view(g1.size(0), -1).norm(2, dim=1) ** 2
        ).mean() * m.cfg.train.r1_gamma / 2 + (
            g2.view(g2.size(0), -1).norm(2, dim=1) ** 2
        ).mean() * m.cfg.train.r1_gamma / 2
        penalty.backward()
    z1, z2 = z(x_l), z(x_u)
    x1_pred, x2_pred = G["res_u2l"](x_u), G["res_l2u"](x_l)
    x1_diff = G["diff_u2l"](torch.cat((x1_tp1.detach(), x2_pred), 1), t1, z1)
    x2_diff = G["diff_l2u"](torch.cat((x2_tp1.detach(), x1_pred), 1), t2, z2)
    x1_pos = diff.sample_posterior(x1_diff[:, [0]], x1_tp1, t1, gen)
    x2_pos = diff.sample_posterior(x2_diff[:, [0]], x2_tp1, t2, gen)
    err_fake = (
        F.softplus(D["disc_l"](x1_pos, t1, x1_tp1.detach()).view(-1)).mean()
        + F.softplus(D["disc_u"](x2_pos, t2, x2_tp1.detach()).view(-1)).mean()
    )
    err_fake.backward()
    # --- PatchGAN discriminators
    D["patch_l"].zero_grad()
    D["patch_u"].zero_grad()
    err_c_real = (
        F.softplus(-D["patch_l"](x_l).view(-1)).mean()
        + F.softplus(-D["patch_u"](x_u).view(-1)).mean()
    )
    err_c_real.backward(retain_graph=True)
    x1_pred, x2_pred = G["res_u2l"](x_u), G["res_l2u"](x_l)
    err_c_fake = (
        F.softplus(D["patch_l"](x1_pred).view(-1)).mean()
        + F.softplus(D["patch_u"](x2_pred).view(-1)).mean()
    )
    err_c_fake.backward()
    grads = {"D": _grads(D.parameters())}
    if opt_d is not None:
        opt_d.step()
    # --- generators
    for p in D.parameters():
        p.requires_grad = False
    G.zero_grad()
    t1, t2 = randint(x_l), randint(x_u)
    _, x1_tp1 = diff.q_sample_pairs(x_l, t1, gen)
    _, x2_tp1 = diff.q_sample_pairs(x_u, t2, gen)
    z1, z2 = z(x_l), z(x_u)
    x1_pred = G["res_u2l"](x_u)
    x2_cycle = G["res_l2u"](x1_pred)
    x2_pred = G["res_l2u"](x_l)
    x1_cycle = G["res_u2l"](x2_pred)
    x1_diff = G["diff_u2l"](torch.cat((x1_tp1.detach(), x2_pred), 1), t1, z1)
    x2_diff = G["diff_l2u"](torch.cat((x2_tp1.detach(), x1_pred), 1), t2, z2)
    x1_pos = diff.sample_posterior(x1_diff[:, [0]], x1_tp1, t1, gen)
    x2_pos = diff.sample_posterior(x2_diff[:, [0]], x2_tp1, t2, gen)
    err_adv = (
        F.softplus(-D["disc_l"](x1_pos, t1, x1_tp1.detach()).view(-1)).mean()
        + F.softplus(-D["disc_u"](x2_pos, t2, x2_tp1.detach()).view(-1)).mean()
    )
    err_c_adv = (
        F.softplus(-D["patch_l"](x1_pred).view(-1)).mean()
        + F.softplus(-D["patch_u"](x2_pred).view(-1)).mean()
    )
    err_l1 = F.l1_loss(x1_diff[:, [0]], x_l) + F.l1_loss(x2_diff[:, [0]], x_u)
    err_cycle = F.l1_loss(x1_cycle, x_l) + F.l1_loss(x2_cycle, x_u)
    torch.autograd.set_detect_anomaly(anomaly)
    err_g = m.cfg.train.lambda_l1 * err_cycle + err_adv + err_c_adv + m.cfg.train.lambda_l1 * err_l1
    err_g.backward()
    grads["G"] = _grads(G.parameters())
    if opt_g is not None:
        opt_g.step()
    for p in D.parameters():
        p.requires_grad = True
    return grads
