"""Unpaired translators between domains L and U, behind one protocol and a registry.

A translator is a LightningModule trained by the `train_translator` stage on batches
`{"x_l", "x_u"}` of [0, 1] tiles, built as `cls(cfg.translator.module(), paired_val=...,
seed=...)`. It checks its own config, given the tile and batch sizes and the sampling asked of
it, before any work (`cls.check(cfg, tile=, batch=, sampler=, samples=)`), translates [0, 1]
images with `translate(x, direction, sampler, generator)` through `inference_networks()`, and its
checkpoint records `cfg.name`, which picks the class that loads it. Adding one: a module here
with a class decorated `@register("name")`, imported below, and `conf/translator/<name>.yaml`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from axondeepsynth.errors import ConfigError
from axondeepsynth.training.translators.cyclegan import CycleGAN  # each import registers
from axondeepsynth.training.translators.registry import TRANSLATORS, check_draws, get, register
from axondeepsynth.training.translators.syndiff import SynDiff

__all__ = [
    "TRANSLATORS",
    "CycleGAN",
    "SynDiff",
    "Translator",
    "build",
    "check_draws",
    "get",
    "load",
    "register",
    "warm_start",
]


class Translator(Protocol):
    samplers: tuple[str, ...]  # and, optionally, `stochastic`: those whose draws differ
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def check(cls, cfg, *, tile: int, batch: int, sampler: str | None, samples: int) -> None:
        """Refuse, before any work, a config this translator cannot train or sample with."""
        ...

    def translate(
        self,
        x: torch.Tensor,
        direction: str,
        sampler: str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor: ...

    def inference_networks(self) -> torch.nn.ModuleDict:
        """The networks `translate` runs (replaced in place by compiled ones for inference)."""
        ...


def build(cfg, paired_val: bool = False, seed: int = 0) -> Translator:
    """A new translator of kind `cfg.name` (a TranslatorConfig)."""
    return get(cfg.name)(cfg, paired_val=paired_val, seed=seed)


def load(
    path: str | Path, device: torch.device | str = "cpu", key: str = "translator.sample.ckpt_path"
) -> Translator:
    """A trained translator from a Lightning checkpoint of any registered kind, in eval mode.

    Read with weights_only=True (a pickled payload never runs); anything unreadable, or not a
    translator's, is one ConfigError naming `key` (the setting that gave the path) and the file."""
    if not Path(path).is_file():
        raise ConfigError(
            key,
            f"checkpoint {path} not found",
            "point it at a translator/checkpoints/*.ckpt of an earlier run",
        )
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True, mmap=True)
        hparams = ckpt["hyper_parameters"]
        cls = TRANSLATORS[hparams["cfg"]["name"]]
        module = cls(hparams["cfg"], paired_val=hparams["paired_val"], seed=hparams["seed"])
        module.load_state_dict(ckpt["state_dict"])
    except Exception as err:  # noqa: BLE001 - truncated, foreign, pickled code: all refused alike
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:160]
        raise ConfigError(
            key,
            f"{path} is not a readable translator checkpoint ({reason})",
            "point it at translator/checkpoints/last.ckpt (or best-*.ckpt) of an earlier run",
        ) from None
    return module.to(device).eval()


def warm_start(module: Translator, path: str | Path) -> list[str]:
    """Give `module`'s networks the weights of those of the same name in the translator at
    `path` (`translator.init_from`), its generators' EMA included; the others keep their
    initialisation (every translator has the pair's). Returns the networks taken, generators
    first; one of another size is a ConfigError."""
    source = load(path, key="translator.init_from")
    taken = []
    for group in ("G", "D"):
        ours, theirs = getattr(module, group), getattr(source, group)
        for name in sorted(ours.keys() & theirs.keys()):
            nets = [(ours[name], theirs[name])]
            if group == "G":
                nets.append((module.G_ema.module[name], source.G_ema.module[name]))
            for target, net in nets:
                try:
                    target.load_state_dict(net.state_dict())
                except RuntimeError as err:
                    raise ConfigError(
                        "translator.init_from",
                        f"{path}'s {name} does not fit this translator's: "
                        + str(err).splitlines()[-1].strip()[:160],
                        f"give translator.net the checkpoint's sizes (translator={source.cfg.name}"
                        " and its net are in the checkpoint's hyper_parameters)",
                    ) from None
            taken.append(name)
    return taken
