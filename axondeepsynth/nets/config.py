"""Sizes of the networks, as plain dataclasses: the config schema reads them without torch."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass
class DiffusionConfig:
    """The variance schedule of the T-step diffusion; defaults are SynDiff's."""

    num_timesteps: int = 4
    beta_min: float = 0.1
    beta_max: float = 20.0
    use_geometric: bool = False


@dataclass
class NCSNppConfig:
    """Sizes of the diffusive generator; defaults are SynDiff's 256x256 configuration."""

    image_size: int = 256
    num_channels: int = 2  # input and output channels: [x_tp1, source] in, [x_0, extra] out
    num_channels_dae: int = 64  # base width nf; the time embedding is 4 * nf wide
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    fir_kernel: tuple[int, ...] = (1, 3, 3, 1)
    nz: int = 100  # latent z dimension
    n_mlp: int = 3  # hidden layers of the z mapping network
    z_emb_dim: int = 256
    not_use_tanh: bool = False


@dataclass
class ResnetGeneratorConfig:
    """Sizes of the ResNet generator; defaults are SynDiff's."""

    in_channels: int = 1
    out_channels: int = 1
    ngf: int = 64
    n_blocks: int = 6
    n_downsampling: int = 2


@dataclass
class PatchDiscriminatorConfig:
    """Sizes of the PatchGAN discriminator; defaults are SynDiff's (``define_D()``)."""

    in_channels: int = 1
    ndf: int = 64
    n_layers: int = 3


@dataclass
class TimeDiscriminatorConfig:
    """Sizes of the time-conditioned discriminator; defaults are SynDiff's (256x256 images).

    Widths are ``ngf * ch_mult[i]``: the first is the 1x1 input conv, each further entry a
    downsampling block, so the image side must be divisible by ``2 ** (len(ch_mult) - 1)``.
    """

    in_channels: int = 2  # x_t and x_tp1, one channel each
    ngf: int = 64
    ch_mult: tuple[int, ...] = (2, 4, 8, 8, 8, 8, 8)
    t_emb_dim: int = 256
    fir_kernel: tuple[int, ...] = (1, 3, 3, 1)
    stddev_group: int = 4  # minibatch-stddev group size; the batch must divide into groups


class Norm(StrEnum):
    instance = "instance"  # affine
    batch = "batch"


@dataclass
class UNetConfig:
    """Sizes of the U-Net; `depth` counts resolution stages, the bottleneck included."""

    in_channels: int = 1
    num_classes: int = 3
    base_channels: int = 32
    max_channels: int = 320
    depth: int = 5
    convs_per_stage: int = 2
    norm: Norm = Norm.instance
    deep_supervision: bool = True  # nnU-Net's default: a loss at every decoder scale
