"""SynDiff's non-diffusive generator: the CycleGAN ResNet generator (``resnet_6blocks``).

Reflection padding, instance norm without affine parameters (so every conv keeps its bias),
ReLU, a final tanh; weights ~ N(0, 0.02), biases 0.
"""

from __future__ import annotations

from torch import Tensor, nn

from axondeepsynth.nets.config import ResnetGeneratorConfig
from axondeepsynth.nets.layers import Recomputable, instance_norm, normal_init_


def conv_norm_relu(in_ch: int, out_ch: int, kernel_size: int, **conv_kw: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel_size, **conv_kw), instance_norm(out_ch), nn.ReLU()]


class ResnetBlock(Recomputable):
    """``x + IN(conv(pad(ReLU(IN(conv(pad(x)))))))`` with 3x3 convs and reflection padding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            *conv_norm_relu(dim, dim, 3),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            instance_norm(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image translator ``(B, in_channels, H, W) -> (B, out_channels, H, W)`` in (-1, 1).

    H and W must be divisible by ``2 ** n_downsampling``.
    """

    def __init__(self, cfg: ResnetGeneratorConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ResnetGeneratorConfig()
        self.cfg = cfg
        ch = cfg.ngf
        layers = [nn.ReflectionPad2d(3), *conv_norm_relu(cfg.in_channels, ch, 7)]
        for _ in range(cfg.n_downsampling):
            layers += conv_norm_relu(ch, 2 * ch, 3, stride=2, padding=1)
            ch *= 2
        layers += [ResnetBlock(ch) for _ in range(cfg.n_blocks)]
        for _ in range(cfg.n_downsampling):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                instance_norm(ch // 2),
                nn.ReLU(),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, cfg.out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        normal_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
