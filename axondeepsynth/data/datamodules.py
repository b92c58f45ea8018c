"""LightningDataModules: unpaired L/U tiles for the translator, k-fold tiles for segmentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from axondeepsynth.data.config import SegmenterTilesConfig, TilesConfig, TranslatorTilesConfig
from axondeepsynth.data.folds import splits
from axondeepsynth.data.records import Sample
from axondeepsynth.data.training_tiles import (
    EpochSampler,
    FixedTiles,
    PairedTiles,
    RandomTiles,
    UnpairedTiles,
    augmentation,
    segmentation_augmentation,
)
from axondeepsynth.errors import DataError
from axondeepsynth.lightning_internals import batches_done_this_epoch


def _split_val(samples: list[Sample], n_val: int) -> tuple[list[Sample], list[Sample]]:
    """Hold the last `n_val` images out (all kept for training when there are too few)."""
    if n_val <= 0 or len(samples) <= n_val:
        return samples, samples[-max(n_val, 1) :]
    return samples[:-n_val], samples[-n_val:]


class _TileDataModule(pl.LightningDataModule):
    """`tiles_per_epoch` tiles as `cfg` draws them, in batches of `batch_size`."""

    def __init__(self, cfg: TilesConfig, batch_size: int, tiles_per_epoch: int, seed: int) -> None:
        super().__init__()
        self.cfg, self.seed = cfg, seed
        self.batch_size, self.tiles_per_epoch = batch_size, tiles_per_epoch
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        workers = self.cfg.num_workers
        if train:
            sampler = EpochSampler(len(dataset), skip=self._batches_done() * self.batch_size)
        elif dist.is_available() and dist.is_initialized():  # each rank scores its own share
            sampler = DistributedSampler(dataset, shuffle=False)
        else:
            sampler = None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=train,
        )

    def _batches_done(self) -> int:
        """Batches of the current epoch a resumed fit has already trained on (skipped)."""
        return 0 if self.trainer is None else batches_done_this_epoch(self.trainer)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)


class TranslationDataModule(_TileDataModule):
    """Unpaired tiles of L and U, each domain drawn by its own seeded stream."""

    def __init__(
        self,
        cfg: TranslatorTilesConfig,
        batch_size: int,
        tiles_per_epoch: int,
        seed: int,
        l_samples: list[Sample],
        u_samples: list[Sample],
    ) -> None:
        super().__init__(cfg, batch_size, tiles_per_epoch, seed)
        self.l_samples, self.u_samples = l_samples, u_samples

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        c = self.cfg
        (l_train, l_val), (u_train, u_val) = (
            _split_val(s, c.val_images) for s in (self.l_samples, self.u_samples)
        )
        tiles = dict(
            tile=c.tile_size,
            length=self.tiles_per_epoch,
            seed=self.seed,
            transform=augmentation(c.tile_size, c.geometric_aug, c.rot90),
            draw=c.tile_draw,
        )
        self.train_set = UnpairedTiles(
            RandomTiles(l_train, stream=0, **tiles), RandomTiles(u_train, stream=1, **tiles)
        )
        self.val_set = PairedTiles(
            FixedTiles(l_val, c.tile_size, c.val_tiles_per_image),
            FixedTiles(u_val, c.tile_size, c.val_tiles_per_image),
        )


class SegmentationDataModule(_TileDataModule):
    """Labelled tiles of one domain with a k-fold split by subject, recorded in `split_file`;
    augmented as `cfg.augment` says and normalised per image as `normalize` says."""

    def __init__(
        self,
        cfg: SegmenterTilesConfig,
        batch_size: int,
        tiles_per_epoch: int,
        seed: int,
        samples: list[Sample],
        fold: int,
        k: int = 5,
        split_file: Path | None = None,
        normalize: str = "image",
    ) -> None:
        super().__init__(cfg, batch_size, tiles_per_epoch, seed)
        self.fold, self.k, self.samples, self.split_file = fold, k, samples, split_file
        self.normalize = normalize

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        c = self.cfg
        if not 0 <= self.fold < self.k:
            raise DataError("segmenter.fold", f"fold {self.fold} out of range for k={self.k}")
        split = splits(self.samples, self.k, self.seed)[self.fold]
        self.train_samples, self.val_samples = split["train"], split["val"]
        if self.split_file is not None:
            self.split_file.parent.mkdir(parents=True, exist_ok=True)
            self.split_file.write_text(
                json.dumps(
                    {
                        "fold": self.fold,
                        "k": self.k,
                        "seed": self.seed,
                        "train": [s.key for s in self.train_samples],
                        "val": [s.key for s in self.val_samples],
                    },
                    indent=2,
                )
            )
        self.train_set = RandomTiles(
            self.train_samples,
            c.tile_size,
            self.tiles_per_epoch,
            self.seed,
            transform=segmentation_augmentation(c.tile_size, c.augment),
            draw=c.tile_draw,
            normalize=self.normalize,
        )
        self.val_set = FixedTiles(
            self.val_samples, c.tile_size, c.val_tiles_per_image, self.normalize
        )
