"""Exponential moving average of a module's parameters (SynDiff keeps one of its generators)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """`ema = decay * ema + (1 - decay) * param` after each step; the first update copies.

    A plain module (picklable for ddp_spawn, saved in checkpoints); its parameters take no
    gradients, so DDP ignores them.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(module).requires_grad_(False)
        self.decay = decay
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        weight = 1.0 if self.updates == 0 else 1.0 - self.decay
        for ema, param in zip(self.module.parameters(), module.parameters(), strict=True):
            ema.lerp_(param.detach(), weight)
        self.updates += 1
