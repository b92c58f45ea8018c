"""Tile datasets: seeded random crops for training, fixed tiles for validation.

A training item's randomness (which image, where, which flip) comes only from
`(seed, stream, index)`, so runs are reproducible with any number of workers or ranks and a
resumed run draws the same tiles. `EpochSampler` hands out fresh global indices every epoch and
splits them across DDP ranks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import albumentations as A
import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from axondeepsynth.data.config import AugmentConfig
from axondeepsynth.data.records import Sample


def augmentation(tile: int, geometric: bool = True, rot90: bool = True) -> A.Compose:
    """Translator tiles: a random crop plus optional flips (and rot90); intensities untouched."""
    steps: list = [A.PadIfNeeded(tile, tile, border_mode=4), A.RandomCrop(tile, tile)]
    if geometric:
        steps += [A.HorizontalFlip(), A.VerticalFlip()] + ([A.RandomRotate90()] if rot90 else [])
    return A.Compose(steps)


def segmentation_augmentation(tile: int, aug: AugmentConfig) -> A.Compose:
    """nnU-Net's 2-D recipe on images in [0, 1]: spatial transforms on a crop 1.5x the tile
    (so rotations and zooms see real pixels, not padding), then the centre tile, mirroring and
    intensity transforms. Masks follow every spatial step by nearest neighbour."""
    big = tile * 3 // 2
    reflect = cv2.BORDER_REFLECT_101
    steps: list = [
        A.PadIfNeeded(big, big, border_mode=reflect),
        A.RandomCrop(big, big),
        A.Affine(rotate=(-180, 180), border_mode=reflect, p=aug.p_rotate),
        A.Affine(scale=aug.scale, border_mode=reflect, p=aug.p_scale),
        A.GridDistortion(distort_limit=0.3, border_mode=reflect, p=aug.p_elastic),
        A.CenterCrop(tile, tile),
    ]
    if aug.mirror:
        steps += [A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90()]
    steps += [
        A.GaussNoise(std_range=(0.0, 0.1), p=aug.p_noise),
        A.GaussianBlur(sigma_limit=(0.5, 1.0), p=aug.p_blur),
        A.MultiplicativeNoise((0.75, 1.25), p=aug.p_brightness),
        A.RandomBrightnessContrast(0.0, 0.25, p=aug.p_contrast),
        A.Downscale(
            (0.5, 1.0), {"downscale": cv2.INTER_NEAREST, "upscale": cv2.INTER_CUBIC}, p=aug.p_lowres
        ),
        A.RandomGamma((70, 150), p=aug.p_gamma),
    ]
    return A.Compose(steps)


def intensity_stats(image: np.ndarray, normalize: str | None) -> tuple[float, float]:
    """(shift, scale) mapping an image in [0, 1] to the network's input: `image` z-scores it
    over the whole image (nnU-Net), `fixed` maps [0, 1] to [-1, 1], None leaves it as it is."""
    if normalize == "image":
        return float(image.mean(dtype=np.float64)), max(float(image.std(dtype=np.float64)), 1e-6)
    return (0.5, 0.5) if normalize == "fixed" else (0.0, 1.0)


def to_item(
    image: np.ndarray, labels: np.ndarray | None, stats: tuple[float, float] = (0.0, 1.0)
) -> dict[str, torch.Tensor]:
    shift, scale = stats
    pixels = (np.asarray(image, np.float32) - shift) / scale
    item = {"image": torch.from_numpy(np.ascontiguousarray(pixels, np.float32))[None]}
    if labels is not None:
        item["labels"] = torch.from_numpy(np.ascontiguousarray(labels)).long()
    return item


class RandomTiles(Dataset):
    """Random tiles of a domain's images, drawn in proportion to their area (or uniformly),
    transformed and mapped to the network's input range by each whole image's statistics."""

    def __init__(
        self,
        samples: Sequence[Sample],
        tile: int,
        length: int,
        seed: int,
        stream: int = 0,
        transform: A.Compose | None = None,  # default: `augmentation(tile)`
        draw: str = "area",
        normalize: str | None = None,
    ) -> None:
        if not samples:
            raise ValueError("RandomTiles needs at least one image")
        self.samples, self.length, self.seed, self.stream = samples, length, seed, stream
        area = np.array([s.image.size if draw == "area" else 1 for s in samples], np.float64)
        self.p = area / area.sum()
        self.transform = transform or augmentation(tile)
        self.stats = [intensity_stats(s.image, normalize) for s in samples]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.stream, index])
        i = rng.choice(len(self.samples), p=self.p)
        sample = self.samples[i]
        self.transform.set_random_seed(int(rng.integers(2**31)))
        if sample.labels is None:
            return to_item(self.transform(image=sample.image)["image"], None, self.stats[i])
        out = self.transform(image=sample.image, mask=sample.labels)
        return to_item(out["image"], out["mask"], self.stats[i])


class UnpairedTiles(Dataset):
    """Independent random tiles of domain L (`x_l`) and domain U (`x_u`)."""

    def __init__(self, l_tiles: RandomTiles, u_tiles: RandomTiles) -> None:
        self.l_tiles, self.u_tiles = l_tiles, u_tiles

    def __len__(self) -> int:
        return len(self.l_tiles)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x_l": self.l_tiles[index]["image"], "x_u": self.u_tiles[index]["image"]}


class FixedTiles(Dataset):
    """Deterministic non-overlapping tiles, at most `per_image` spread over each image."""

    def __init__(
        self,
        samples: Sequence[Sample],
        tile: int,
        per_image: int = 4,
        normalize: str | None = None,
    ) -> None:
        pad = A.PadIfNeeded(tile, tile, border_mode=4)
        self.items = []
        for s in samples:
            image, labels = s.image, s.labels
            stats = intensity_stats(image, normalize)
            if min(image.shape) < tile:
                out = pad(image=image, **({"mask": labels} if labels is not None else {}))
                image, labels = out["image"], out.get("mask")
            h, w = image.shape
            grid = [
                (y, x) for y in range(0, h - tile + 1, tile) for x in range(0, w - tile + 1, tile)
            ]
            corners = grid[:: max(1, len(grid) // per_image)][:per_image]  # spread over the image
            for y, x in corners:
                crop = labels[y : y + tile, x : x + tile] if labels is not None else None
                self.items.append(to_item(image[y : y + tile, x : x + tile], crop, stats))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


class PairedTiles(Dataset):
    """Validation pairs of L and U tiles (cycled to the longer list); `paired` when aligned."""

    def __init__(self, l_tiles: FixedTiles, u_tiles: FixedTiles) -> None:
        self.l_tiles, self.u_tiles = l_tiles, u_tiles

    def __len__(self) -> int:
        return max(len(self.l_tiles), len(self.u_tiles))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "x_l": self.l_tiles[index % len(self.l_tiles)]["image"],
            "x_u": self.u_tiles[index % len(self.u_tiles)]["image"],
        }


class EpochSampler(Sampler[int]):
    """Global indices `epoch * length + i`, strided across DDP ranks; Lightning sets the epoch.

    `skip` leading indices of the next epoch are left out once: a run resumed from a mid-epoch
    checkpoint carries on with the tiles it had not trained on yet.
    """

    def __init__(self, length: int, skip: int = 0) -> None:
        self.length, self.epoch, self.skip = length, 0, skip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rank(self) -> tuple[int, int]:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        return self.length // self._rank()[1]

    def __iter__(self) -> Iterator[int]:
        """Every rank gets the same number of indices (a remainder is dropped), so DDP ranks
        run the same number of steps."""
        rank, world = self._rank()
        base = self.epoch * self.length
        indices = range(base + rank, base + len(self) * world, world)[self.skip :]
        self.skip = 0
        return iter(indices)
