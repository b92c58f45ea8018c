"""SynDiff's non-diffusive pair trained alone: two ResNet generators (L->U, U->L) and two
PatchGANs, adversarial + cycle-consistent, with SynDiff's losses, optimisers and generator EMA.

It is the base SynDiff extends (`syndiff.py` adds the diffusive pair) and a translator of its
own (`translator=cyclegan`): on a CPU it learns TEM <-> SEM contrast in fewer batches.
Images are in [-1, 1] inside the module and [0, 1] outside.

Per batch:
  D step  softplus(-D(x)) + softplus(D(res(x_other))) for both PatchGANs;
  G step  softplus(-D(res(x_other))) + lambda_l1 * (|res(res(x)) - x|, both cycles)
          [+ lambda_struct * structure(x, res(x)), both directions: `structure.py`].
Generators' forward passes inside the D step run without autograd, and the discriminators
share one Adam (per-parameter, so identical updates to separate ones).
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from axondeepsynth.errors import ConfigError, check_finite
from axondeepsynth.nets.discriminators import PatchDiscriminator
from axondeepsynth.nets.layers import set_recompute
from axondeepsynth.nets.resnet import ResnetGenerator
from axondeepsynth.schema import plain, structured
from axondeepsynth.training.config import TranslatorConfig, nested
from axondeepsynth.training.ema import EMA
from axondeepsynth.training.metrics import TranslationMetrics
from axondeepsynth.training.panels import log_panel
from axondeepsynth.training.structure import structure_loss
from axondeepsynth.training.translators.registry import check_draws, register


@register("cyclegan")
class CycleGAN(pl.LightningModule):
    samplers: tuple[str, ...] = ("resnet",)
    stochastic: tuple[str, ...] = ()  # samplers whose draws differ from one seed to the next

    def __init__(
        self, cfg: TranslatorConfig | dict, paired_val: bool = False, seed: int = 0
    ) -> None:
        super().__init__()
        cfg = structured(TranslatorConfig, nested(cfg)) if isinstance(cfg, dict) else cfg
        # plain types only, so checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters({"cfg": plain(cfg), "paired_val": paired_val, "seed": seed})
        self.cfg, self.paired_val, self.seed = cfg, paired_val, seed
        self.automatic_optimization = False
        gens = {
            "res_l2u": ResnetGenerator(cfg.net.resnet),
            "res_u2l": ResnetGenerator(cfg.net.resnet),
        }
        discs = {
            "patch_l": PatchDiscriminator(cfg.net.patch_disc),
            "patch_u": PatchDiscriminator(cfg.net.patch_disc),
        }
        more_gens, more_discs = self.more_networks()  # built after the pair's: same init draws
        self.G, self.D = nn.ModuleDict(gens | more_gens), nn.ModuleDict(discs | more_discs)
        set_recompute(self, cfg.train.recompute)
        self.memory_format = (
            torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        )
        if cfg.train.channels_last:
            self.to(memory_format=self.memory_format)
        self.G_ema = EMA(self.G, cfg.train.ema_decay)
        # in place, after the EMA copy: parameter names and the copy unchanged
        if cfg.train.compile:
            for net in self.G.values():
                net.compile()
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        self.metrics = TranslationMetrics()

    @classmethod
    def check(
        cls, cfg: TranslatorConfig, *, tile: int, batch: int, sampler: str | None, samples: int
    ) -> None:
        """Refuse, before any work, what this translator cannot train on `batch` tiles of
        `tile` px or sample with (`sampler` overrides `cfg.train.sampler`; `samples` draws)."""
        for key, chosen in (
            ("translator.train.sampler", cfg.train.sampler),
            ("translator.sample.sampler", sampler),
        ):
            if chosen is not None and chosen not in cls.samplers:
                raise ConfigError(
                    key,
                    f"translator={cfg.name} has no {chosen} sampler",
                    f"set {key}={' or '.join(cls.samplers)}",
                )
        check_draws(cls, sampler or cfg.train.sampler, samples)

    def more_networks(self) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        """Generators and discriminators a subclass trains beside the pair."""
        return {}, {}

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        c = self.cfg
        opt_g = torch.optim.Adam(
            self.G.parameters(), lr=c.train.lr_g, betas=tuple(c.train.betas), fused=True
        )
        opt_d = torch.optim.Adam(
            self.D.parameters(), lr=c.train.lr_d, betas=tuple(c.train.betas), fused=True
        )
        if not c.train.lr_decay:
            return [opt_g, opt_d]
        epochs = max(1, self.trainer.max_epochs or 1)
        scheds = [
            torch.optim.lr_scheduler.CosineAnnealingLR(o, epochs, eta_min=c.train.lr_min)
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
        shared = self.generate(x_l, x_u, gen) if self.cfg.train.reuse_generator_pass else None
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
        """The non-diffusive translations `x_*_res` and, if asked, their cycles `x_*_cyc`."""
        out = {"x_l_res": self.G["res_u2l"](x_u), "x_u_res": self.G["res_l2u"](x_l)}
        if cycles:
            out["x_u_cyc"] = self.G["res_l2u"](out["x_l_res"])
            out["x_l_cyc"] = self.G["res_u2l"](out["x_u_res"])
        return out

    def discriminator_loss(
        self, x_l: Tensor, x_u: Tensor, gen: torch.Generator, fake: dict | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """D step: PatchGANs on real images vs non-diffusive translations, plus a subclass's
        terms. Without a shared `fake`, the generators run here on fresh draws and without
        autograd (their gradients would be discarded)."""
        if fake is None:
            with torch.no_grad():
                fake = self.generate(x_l, x_u, gen, cycles=False)
        fake = {k: v.detach() for k, v in fake.items()}
        loss_more, logs = self.more_discriminator_loss(fake)
        loss_patch = (
            F.softplus(-self.D["patch_l"](x_l)).mean()
            + F.softplus(-self.D["patch_u"](x_u)).mean()
            + F.softplus(self.D["patch_l"](fake["x_l_res"])).mean()
            + F.softplus(self.D["patch_u"](fake["x_u_res"])).mean()
        )
        logs["train/d_patch"] = loss_patch.detach()
        return loss_more + loss_patch, logs

    def generator_loss(
        self, x_l: Tensor, x_u: Tensor, gen: torch.Generator, fake: dict | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """G step: adversarial (PatchGAN) + lambda_l1 * cycle L1 (+ lambda_struct * structure),
        plus a subclass's adversarial and L1 terms, on fresh draws unless the D step's `fake` is
        shared."""
        fake = self.generate(x_l, x_u, gen) if fake is None else fake
        loss_adv, loss_l1, logs = self.more_generator_losses(fake, x_l, x_u)
        loss_adv_cyc = (
            F.softplus(-self.D["patch_l"](fake["x_l_res"])).mean()
            + F.softplus(-self.D["patch_u"](fake["x_u_res"])).mean()
        )
        loss_cycle = F.l1_loss(fake["x_l_cyc"], x_l) + F.l1_loss(fake["x_u_cyc"], x_u)
        loss_g = loss_adv + loss_adv_cyc + self.cfg.train.lambda_l1 * (loss_l1 + loss_cycle)
        if self.cfg.train.lambda_struct:  # off by default: the published losses, bitwise
            loss_struct = structure_loss(x_l, fake["x_u_res"]) + structure_loss(
                x_u, fake["x_l_res"]
            )
            loss_g = loss_g + self.cfg.train.lambda_struct * loss_struct
            logs["train/g_struct"] = loss_struct.detach()
        logs |= {
            "train/g_adv_cycle": loss_adv_cyc.detach(),
            "train/g_cycle": loss_cycle.detach(),
            "train/g": loss_g.detach(),
        }
        return loss_g, logs

    def more_discriminator_loss(self, fake: dict[str, Tensor]) -> tuple[Tensor | float, dict]:
        """A subclass's discriminator terms (and logs), added to the PatchGANs'."""
        return 0.0, {}

    def more_generator_losses(
        self, fake: dict[str, Tensor], x_l: Tensor, x_u: Tensor
    ) -> tuple[Tensor | float, Tensor | float, dict]:
        """A subclass's (adversarial, L1) generator terms and logs."""
        return 0.0, 0.0, {}

    # ------------------------------------------------------------------ translation
    @torch.no_grad()
    def translate(
        self,
        x: Tensor,
        direction: str,
        sampler: str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Translate [0, 1] images with the EMA generators; returns [0, 1] images."""
        sampler = sampler or self.cfg.train.sampler
        if sampler not in self.samplers:
            raise ValueError(
                f"translator={self.cfg.name} has no {sampler} sampler "
                f"(use {', '.join(self.samplers)})"
            )
        y = self.sample(self.inference_networks(), x * 2 - 1, direction, sampler, generator)
        return ((y.clamp(-1, 1) + 1) / 2).to(x.dtype)

    def inference_networks(self) -> nn.ModuleDict:
        """The EMA generators: what validation, checkpoints and translation use."""
        return self.G_ema.module

    def sample(
        self,
        nets: nn.ModuleDict,
        source: Tensor,
        direction: str,
        sampler: str,
        generator: torch.Generator | None,
    ) -> Tensor:
        """[-1, 1] source -> [-1, 1] translation by `sampler`."""
        return nets[f"res_{direction}"](source)

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
        if batch_idx == 0 and self.current_epoch % self.cfg.train.panel_every_n_epochs == 0:
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
