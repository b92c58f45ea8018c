"""A structure term for translators: where the source has edges, its translation has them too.

Cycle consistency alone lets a translator move a tile's content into its texture and rebuild
it on the way back (L -> U shows another layout, L -> U -> L is right). This term ties each
translation to its own source: one minus the correlation of their gradient magnitudes, per
image. It is blind to polarity and contrast (myelin may turn from dark to bright), so it leaves
the look to the adversarial terms and only pins the layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8


def edge_magnitude(x: Tensor) -> Tensor:
    """|∇x| of (B, 1, H, W) images by Sobel filters, reflect-padded to the same size."""
    kernel = torch.stack([_SOBEL, _SOBEL.T])[:, None].to(x)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel)
    return torch.sqrt(g.square().sum(1, keepdim=True) + 1e-8)


def structure_loss(source: Tensor, translation: Tensor) -> Tensor:
    """Mean over the batch of 1 - Pearson correlation between the edge magnitudes of each
    source and its translation: 0 for the same edges at any contrast, about 1 for unrelated
    ones."""
    a, b = (edge_magnitude(x).flatten(1) for x in (source, translation))
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    corr = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)
    return (1 - corr).mean()
