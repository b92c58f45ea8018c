"""SynDiff (Özbey et al., IEEE TMI 2023): the non-diffusive pair of `cyclegan.py` plus two
diffusive generators and two time-conditioned discriminators, trained together.

Naming: `diff_u2l` is the reference's netG1 (denoises L images conditioned on a U-look source),
`diff_l2u` is netG2, `res_l2u` / `res_u2l` are net1to2 / net2to1, `disc_l` / `disc_u` are the
time-conditioned D1 / D2, `patch_l` / `patch_u` the PatchGANs D_cycle1 / D_cycle2. Images are in
[-1, 1] inside the module and [0, 1] outside.

Per batch, with the reference's random draws in the reference's order:
  D step  softplus(-D(x_t, t, x_tp1)) + softplus(D(x_t', t, x_tp1)) + lazy R1 on real x_t, where
          x_t' ~ q(x_t | G(x_tp1, res(x), t, z), x_tp1); PatchGAN real vs res outputs.
  G step  adversarial (diffusive) + adversarial (PatchGAN) + lambda_l1 * (|G - x_0| + |cycle - x|).
An EMA of the generators is used for validation, checkpoints and translation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from axondeepsynth.errors import ConfigError
from axondeepsynth.nets.diffusion import Diffusion
from axondeepsynth.nets.discriminators import TimeDiscriminator
from axondeepsynth.nets.ncsnpp import NCSNpp
from axondeepsynth.training.config import TranslatorConfig
from axondeepsynth.training.translators.cyclegan import CycleGAN
from axondeepsynth.training.translators.registry import register


@register("syndiff")
class SynDiff(CycleGAN):
    samplers = ("diffusive", "resnet")
    stochastic = ("diffusive",)  # latent z and the posterior's noise at each of the T steps

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.diffusion = Diffusion(self.cfg.net.diffusion)

    @classmethod
    def check(
        cls, cfg: TranslatorConfig, *, tile: int, batch: int, sampler: str | None, samples: int
    ) -> None:
        super().check(cfg, tile=tile, batch=batch, sampler=sampler, samples=samples)
        m = cfg
        if m.net.diffusive.image_size != tile:
            raise ConfigError(
                "translator.net.diffusive.image_size",
                f"is {m.net.diffusive.image_size} but translator.data.tile_size is {tile}",
                "set both to the same size (the generator's attention sits at a fixed resolution)",
            )
        group = min(batch, m.net.time_disc.stddev_group)
        if batch % group:
            raise ConfigError(
                "translator.train.batch_size",
                f"{batch} does not split into minibatch-stddev groups of {group}",
                f"use a multiple of {group} (or 1-{group})",
            )
        down = 2 ** (len(m.net.time_disc.ch_mult) - 1)
        if tile % down:
            raise ConfigError(
                "translator.data.tile_size",
                f"{tile} is not divisible by {down} (time discriminator depth)",
                "pick a multiple of it, or shorten translator.net.time_disc.ch_mult",
            )

    def more_networks(self) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        c = self.cfg
        gens = {"diff_u2l": NCSNpp(c.net.diffusive), "diff_l2u": NCSNpp(c.net.diffusive)}
        return gens, {
            "disc_l": TimeDiscriminator(c.net.time_disc),
            "disc_u": TimeDiscriminator(c.net.time_disc),
        }

    def generate(
        self, x_l: Tensor, x_u: Tensor, gen: torch.Generator, cycles: bool = True
    ) -> dict[str, Tensor]:
        """One draw of t, (x_t, x_tp1) and z per domain, in the reference's order, and what the
        generators make of it: non-diffusive translations `x_*_res` (and their cycles), x_0
        predictions `x_*_0` and posterior samples `x_*_pos` ~ q(x_t | x_0, x_tp1)."""
        out = super().generate(x_l, x_u, gen, cycles)
        (t_l, x_l_t, x_l_tp1), (t_u, x_u_t, x_u_tp1) = self._pairs(x_l, x_u, gen)
        z_l, z_u = self._z(x_l, gen), self._z(x_u, gen)
        x_l_0 = self.G["diff_u2l"](torch.cat([x_l_tp1, out["x_u_res"]], 1), t_l, z_l)[:, :1]
        x_u_0 = self.G["diff_l2u"](torch.cat([x_u_tp1, out["x_l_res"]], 1), t_u, z_u)[:, :1]
        return out | {
            "t_l": t_l, "x_l_t": x_l_t, "x_l_tp1": x_l_tp1, "x_l_0": x_l_0,
            "t_u": t_u, "x_u_t": x_u_t, "x_u_tp1": x_u_tp1, "x_u_0": x_u_0,
            "x_l_pos": self.diffusion.sample_posterior(x_l_0, x_l_tp1, t_l, gen),
            "x_u_pos": self.diffusion.sample_posterior(x_u_0, x_u_tp1, t_u, gen),
        }  # fmt: skip

    def more_discriminator_loss(self, fake: dict[str, Tensor]) -> tuple[Tensor, dict]:
        """Time-conditioned Ds on real pairs vs posterior samples, plus lazy R1 on real x_t."""
        logs = {}
        x_l_t, x_u_t = fake["x_l_t"].requires_grad_(True), fake["x_u_t"].requires_grad_(True)
        d_real_l, d_real_u = self._disc("l", x_l_t, fake), self._disc("u", x_u_t, fake)
        loss = F.softplus(-d_real_l).mean() + F.softplus(-d_real_u).mean()
        if self.batches_seen % self.cfg.train.lazy_reg == 0:
            r1 = self._r1(d_real_l, x_l_t) + self._r1(d_real_u, x_u_t)
            loss = loss + self.cfg.train.r1_gamma / 2 * r1
            logs["train/r1"] = r1.detach()
        loss = loss + (
            F.softplus(self._disc("l", fake["x_l_pos"], fake)).mean()
            + F.softplus(self._disc("u", fake["x_u_pos"], fake)).mean()
        )
        logs["train/d_diff"] = loss.detach()
        return loss, logs

    def more_generator_losses(
        self, fake: dict[str, Tensor], x_l: Tensor, x_u: Tensor
    ) -> tuple[Tensor, Tensor, dict]:
        """Adversarial loss of the posterior samples and L1 of the x_0 predictions."""
        loss_adv = (
            F.softplus(-self._disc("l", fake["x_l_pos"], fake)).mean()
            + F.softplus(-self._disc("u", fake["x_u_pos"], fake)).mean()
        )
        loss_l1 = F.l1_loss(fake["x_l_0"], x_l) + F.l1_loss(fake["x_u_0"], x_u)
        return loss_adv, loss_l1, {"train/g_adv": loss_adv.detach(), "train/g_l1": loss_l1.detach()}

    def _disc(self, domain: str, x_t: Tensor, fake: dict[str, Tensor]) -> Tensor:
        """Logits of domain's time-conditioned D for x_t given the draw's t and x_tp1."""
        return self.D[f"disc_{domain}"](x_t, fake[f"t_{domain}"], fake[f"x_{domain}_tp1"]).view(-1)

    def _pairs(self, x_l: Tensor, x_u: Tensor, gen: torch.Generator) -> tuple[tuple, tuple]:
        """t and (x_t, x_tp1) for both domains, in the reference's draw order."""
        t_l, t_u = (
            torch.randint(
                0, self.diffusion.num_timesteps, (x.shape[0],), device=x.device, generator=gen
            )
            for x in (x_l, x_u)
        )
        pairs_l = self.diffusion.q_sample_pairs(x_l, t_l, gen)
        pairs_u = self.diffusion.q_sample_pairs(x_u, t_u, gen)
        return (t_l, *pairs_l), (t_u, *pairs_u)

    def _z(self, x: Tensor, gen: torch.Generator) -> Tensor:
        return torch.randn(
            x.shape[0], self.cfg.net.diffusive.nz, device=x.device, dtype=x.dtype, generator=gen
        )

    @staticmethod
    def _r1(d_real: Tensor, x_t: Tensor) -> Tensor:
        (grad,) = torch.autograd.grad(d_real.sum(), x_t, create_graph=True)
        return grad.flatten(1).norm(2, dim=1).pow(2).mean()

    def sample(
        self,
        nets: nn.ModuleDict,
        source: Tensor,
        direction: str,
        sampler: str,
        generator: torch.Generator | None,
    ) -> Tensor:
        if sampler == "resnet":
            return super().sample(nets, source, direction, sampler, generator)
        return self.diffusion.sample(
            nets[f"diff_{direction}"], source, self.cfg.net.diffusive.nz, generator
        )
