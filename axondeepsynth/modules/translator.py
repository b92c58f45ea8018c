"""SynDiff as a LightningModule: two diffusive and two non-diffusive generators, trained
adversarially and cycle-consistently between domains L and U (Özbey et al., IEEE TMI 2023).

Naming: `diff_u2l` is the reference's netG1 (denoises L images conditioned on a U-look source),
`diff_l2u` is netG2, `res_l2u` / `res_u2l` are net1to2 / net2to1, `disc_l` / `disc_u` are the
time-conditioned D1 / D2, `patch_l` / `patch_u` the PatchGANs D_cycle1 / D_cycle2. Images are in
[-1, 1] inside the module and [0, 1] outside.

Per batch, with the reference's random draws in the reference's order:
  D step  softplus(-D(x_t, t, x_tp1)) + softplus(D(x_t', t, x_tp1)) + lazy R1 on real x_t, where
          x_t' ~ q(x_t | G(x_tp1, res(x), t, z), x_tp1); PatchGAN real vs res outputs.
  G step  adversarial (diffusive) + adversarial (PatchGAN) + lambda_l1 * (|G - x_0| + |cycle - x|).
Generators' forward passes inside the D step run without autograd (their gradients would be
discarded), and the four discriminators share one Adam (per-parameter, so identical updates).
An EMA of the generators is used for validation, checkpoints and translation.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from axondeepsynth.config import TranslatorConfig, structured
from axondeepsynth.errors import check_finite
from axondeepsynth.models.diffusion import Diffusion
from axondeepsynth.models.discriminators import PatchDiscriminator, TimeDiscriminator
from axondeepsynth.models.layers import set_recompute
from axondeepsynth.models.ncsnpp import NCSNpp
from axondeepsynth.models.resnet import ResnetGenerator
from axondeepsynth.modules.ema import EMA
from axondeepsynth.modules.metrics import TranslationMetrics
from axondeepsynth.modules.panels import log_panel

Direction = Literal["l2u", "u2l"]


class SynDiff(pl.LightningModule):
    def __init__(
        self, cfg: TranslatorConfig | dict, paired_val: bool = False, seed: int = 0
    ) -> None:
        super().__init__()
        cfg = structured(TranslatorConfig, cfg) if isinstance(cfg, dict) else cfg
        # plain types only, so checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters({"cfg": asdict(cfg), "paired_val": paired_val, "seed": seed})
        self.cfg, self.paired_val, self.seed = cfg, paired_val, seed
        self.automatic_optimization = False
        self.diffusive = cfg.name == "syndiff"
        gens = {"res_l2u": ResnetGenerator(cfg.resnet), "res_u2l": ResnetGenerator(cfg.resnet)}
        discs = {
            "patch_l": PatchDiscriminator(cfg.patch_disc),
            "patch_u": PatchDiscriminator(cfg.patch_disc),
        }
        if self.diffusive:
            gens |= {"diff_u2l": NCSNpp(cfg.diffusive), "diff_l2u": NCSNpp(cfg.diffusive)}
            discs |= {
                "disc_l": TimeDiscriminator(cfg.time_disc),
                "disc_u": TimeDiscriminator(cfg.time_disc),
            }
        self.G, self.D = nn.ModuleDict(gens), nn.ModuleDict(discs)
        set_recompute(self, cfg.recompute)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        if cfg.channels_last:
            self.to(memory_format=self.memory_format)
        self.G_ema = EMA(self.G, cfg.ema_decay)
        if cfg.compile:  # in place, after the EMA copy: parameter names and the copy unchanged
            for net in self.G.values():
                net.compile()
        self.diffusion = Diffusion(cfg.diffusion)
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        self.metrics = TranslationMetrics()

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        c = self.cfg
        opt_g = torch.optim.Adam(self.G.parameters(), lr=c.lr_g, betas=tuple(c.betas), fused=True)
        opt_d = torch.optim.Adam(self.D.parameters(), lr=c.lr_d, betas=tuple(c.betas), fused=True)
        if not c.lr_decay:
            return [opt_g, opt_d]
        epochs = max(1, self.trainer.max_epochs or 1)
        scheds = [
            torch.optim.lr_scheduler.CosineAnnealingLR(o, epochs, eta_min=c.lr_min)
            for o in (opt_g, opt_d)
        ]
        return [opt_g, opt_d], scheds

    def on_train_epoch_end(self) -> None:
        for sched in self.lr_schedulers() or []:
            sched.step()

    def _step_generator(self) -> torch.Generator:
        """The random stream of this batch on this rank: a function of (seed, rank, batch) only,
        so a resumed or re-run training draws exactly the same t, noise and z."""
        key = (self.seed * 1_000_003 + self.global_rank) * 1_000_000_007 + int(self.batches_seen)
        return torch.Generator(self.device).manual_seed(key % 2**63)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        x_l, x_u = (
            (batch[k] * 2 - 1).contiguous(memory_format=self.memory_format) for k in ("x_l", "x_u")
        )
        gen = self._step_generator()
        # opt-in: one generator pass (with autograd) serves both steps, see TranslatorConfig
        shared = self.generate(x_l, x_u, gen) if self.cfg.reuse_generator_pass else None
        # gradients are dropped right after each step, so D's never coexist with G's
        self.toggle_optimizer(opt_d)
        loss_d, logs = self.discriminator_loss(x_l, x_u, gen, shared)
        check_finite(logs, int(self.batches_seen), self.current_epoch)
        self.manual_backward(loss_d)
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
        self.untoggle_optimizer(opt_d)
        self.toggle_optimizer(opt_g)
        loss_g, logs_g = self.generator_loss(x_l, x_u, gen, shared)
        check_finite(logs_g, int(self.batches_seen), self.current_epoch)
        self.manual_backward(loss_g)
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        self.untoggle_optimizer(opt_g)
        self.G_ema.update(self.G)
        self.batches_seen += 1
        batch_size = x_l.shape[0]
        self.log_dict(logs | logs_g, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train/g_total", loss_g.detach(), prog_bar=True, batch_size=batch_size)

    def generate(
        self, x_l: Tensor, x_u: Tensor, gen: torch.Generator, cycles: bool = True
    ) -> dict[str, Tensor]:
        """One draw of t, (x_t, x_tp1) and z per domain, in the reference's order, and what the
        generators make of it: non-diffusive translations `x_*_res` (and their cycles), x_0
        predictions `x_*_0` and posterior samples `x_*_pos` ~ q(x_t | x_0, x_tp1)."""
        out = {"x_l_res": self.G["res_u2l"](x_u), "x_u_res": self.G["res_l2u"](x_l)}
        if cycles:
            out["x_u_cyc"] = self.G["res_l2u"](out["x_l_res"])
            out["x_l_cyc"] = self.G["res_u2l"](out["x_u_res"])
        if self.diffusive:
            (t_l, x_l_t, x_l_tp1), (t_u, x_u_t, x_u_tp1) = self._pairs(x_l, x_u, gen)
            z_l, z_u = self._z(x_l, gen), self._z(x_u, gen)
            x_l_0 = self.G["diff_u2l"](torch.cat([x_l_tp1, out["x_u_res"]], 1), t_l, z_l)[:, :1]
            x_u_0 = self.G["diff_l2u"](torch.cat([x_u_tp1, out["x_l_res"]], 1), t_u, z_u)[:, :1]
            out |= {
                "t_l": t_l, "x_l_t": x_l_t, "x_l_tp1": x_l_tp1, "x_l_0": x_l_0,
                "t_u": t_u, "x_u_t": x_u_t, "x_u_tp1": x_u_tp1, "x_u_0": x_u_0,
                "x_l_pos": self.diffusion.sample_posterior(x_l_0, x_l_tp1, t_l, gen),
                "x_u_pos": self.diffusion.sample_posterior(x_u_0, x_u_tp1, t_u, gen),
            }  # fmt: skip
        return out

    def discriminator_loss(
        self, x_l: Tensor, x_u: Tensor, gen: torch.Generator, fake: dict | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """D step: time-conditioned Ds on real pairs vs posterior samples (+ lazy R1), PatchGANs
        on real images vs non-diffusive translations. Without a shared `fake`, the generators
        run here on fresh draws and without autograd (their gradients would be discarded)."""
        if fake is None:
            with torch.no_grad():
                fake = self.generate(x_l, x_u, gen, cycles=False)
        fake = {k: v.detach() for k, v in fake.items()}
        logs, loss_diff = {}, 0.0
        if self.diffusive:
            x_l_t, x_u_t = fake["x_l_t"].requires_grad_(True), fake["x_u_t"].requires_grad_(True)
            d_real_l, d_real_u = self._disc("l", x_l_t, fake), self._disc("u", x_u_t, fake)
            loss_diff = F.softplus(-d_real_l).mean() + F.softplus(-d_real_u).mean()
            if self.batches_seen % self.cfg.lazy_reg == 0:
                r1 = self._r1(d_real_l, x_l_t) + self._r1(d_real_u, x_u_t)
                loss_diff = loss_diff + self.cfg.r1_gamma / 2 * r1
                logs["train/r1"] = r1.detach()
            loss_diff = loss_diff + (
                F.softplus(self._disc("l", fake["x_l_pos"], fake)).mean()
                + F.softplus(self._disc("u", fake["x_u_pos"], fake)).mean()
            )
            logs["train/d_diff"] = loss_diff.detach()
        loss_patch = (
            F.softplus(-self.D["patch_l"](x_l)).mean()
            + F.softplus(-self.D["patch_u"](x_u)).mean()
            + F.softplus(self.D["patch_l"](fake["x_l_res"])).mean()
            + F.softplus(self.D["patch_u"](fake["x_u_res"])).mean()
        )
        logs["train/d_patch"] = loss_patch.detach()
        return loss_diff + loss_patch, logs

    def generator_loss(
        self, x_l: Tensor, x_u: Tensor, gen: torch.Generator, fake: dict | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """G step: adversarial (diffusive + PatchGAN) + lambda_l1 * (diffusive L1 + cycle L1),
        on fresh draws unless the D step's `fake` is shared."""
        fake = self.generate(x_l, x_u, gen) if fake is None else fake
        logs, loss_adv, loss_l1 = {}, 0.0, 0.0
        if self.diffusive:
            loss_adv = (
                F.softplus(-self._disc("l", fake["x_l_pos"], fake)).mean()
                + F.softplus(-self._disc("u", fake["x_u_pos"], fake)).mean()
            )
            loss_l1 = F.l1_loss(fake["x_l_0"], x_l) + F.l1_loss(fake["x_u_0"], x_u)
            logs |= {"train/g_adv": loss_adv.detach(), "train/g_l1": loss_l1.detach()}
        loss_adv_cyc = (
            F.softplus(-self.D["patch_l"](fake["x_l_res"])).mean()
            + F.softplus(-self.D["patch_u"](fake["x_u_res"])).mean()
        )
        loss_cycle = F.l1_loss(fake["x_l_cyc"], x_l) + F.l1_loss(fake["x_u_cyc"], x_u)
        loss_g = loss_adv + loss_adv_cyc + self.cfg.lambda_l1 * (loss_l1 + loss_cycle)
        logs |= {
            "train/g_adv_cycle": loss_adv_cyc.detach(),
            "train/g_cycle": loss_cycle.detach(),
            "train/g": loss_g.detach(),
        }
        return loss_g, logs

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
            x.shape[0], self.cfg.diffusive.nz, device=x.device, dtype=x.dtype, generator=gen
        )

    @staticmethod
    def _r1(d_real: Tensor, x_t: Tensor) -> Tensor:
        (grad,) = torch.autograd.grad(d_real.sum(), x_t, create_graph=True)
        return grad.flatten(1).norm(2, dim=1).pow(2).mean()

    # ------------------------------------------------------------------ translation
    @torch.no_grad()
    def translate(
        self,
        x: Tensor,
        direction: Direction,
        sampler: str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Translate [0, 1] images with the EMA generators; returns [0, 1] images."""
        sampler = sampler or self.cfg.sampler
        nets = self.G_ema.module
        source = x * 2 - 1
        if sampler == "resnet":
            y = nets[f"res_{direction}"](source)
        elif sampler == "diffusive":
            if not self.diffusive:
                raise ValueError("model=cyclegan has no diffusive generator; use sampler=resnet")
            y = self.diffusion.sample(
                nets[f"diff_{direction}"], source, self.cfg.diffusive.nz, generator
            )
        else:
            raise ValueError(f"unknown sampler '{sampler}' (use diffusive or resnet)")
        return ((y.clamp(-1, 1) + 1) / 2).to(x.dtype)

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        x_l, x_u = batch["x_l"], batch["x_u"]
        gen = torch.Generator(x_l.device).manual_seed(batch_idx)
        x_u_hat = self.translate(x_l, "l2u", generator=gen)
        x_l_hat = self.translate(x_u, "u2l", generator=gen)
        x_l_cyc = self.translate(x_u_hat, "u2l", generator=gen)
        x_u_cyc = self.translate(x_l_hat, "l2u", generator=gen)
        self.metrics.update("cycle_l", x_l_cyc, x_l)
        self.metrics.update("cycle_u", x_u_cyc, x_u)
        if self.paired_val:
            self.metrics.update("l2u", x_u_hat, x_u)
            self.metrics.update("u2l", x_l_hat, x_l)
        if batch_idx == 0 and self.current_epoch % self.cfg.panel_every_n_epochs == 0:
            rows = [torch.cat([x_l, x_u_hat, x_l_cyc], -1), torch.cat([x_u, x_l_hat, x_u_cyc], -1)]
            log_panel(
                self,
                "val/panel",
                torch.cat(rows, -2)[:4],
                caption="rows: L | L->U | L->U->L, then U | U->L | U->L->U",
            )

    def on_validation_epoch_end(self) -> None:
        values = self.metrics.compute(self.all_gather)
        self.log_dict(values, sync_dist=False)
        self.metrics.reset()
