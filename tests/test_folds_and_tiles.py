"""k-fold splits never leak subjects; tile draws are seeded by index, not by worker or rank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_RUN, compose_cfg, overridden

from axondeepsynth.data.folds import kfold
from axondeepsynth.data.records import Sample
from axondeepsynth.data.resample import resample, scale_factor
from axondeepsynth.data.training_tiles import EpochSampler, FixedTiles, RandomTiles
from axondeepsynth.errors import ConfigError
from axondeepsynth.pipeline import run_stages


def _samples(n: int, subjects: int, size: int = 80) -> list[Sample]:
    rng = np.random.default_rng(0)
    return [
        Sample(
            f"img{i}",
            f"sub-{i % subjects}",
            rng.random((size, size + i), np.float32),
            0.1,
            rng.integers(0, 3, (size, size + i), dtype=np.uint8),
            Path(f"img{i}.png"),
        )
        for i in range(n)
    ]


def test_kfold_by_subject() -> None:
    groups = [f"sub-{i % 6}" for i in range(14)]
    folds = kfold(groups, 5, seed=3)
    seen = []
    for train, val in folds:
        assert not {groups[i] for i in train} & {groups[i] for i in val}
        assert sorted(train + val) == list(range(14))
        seen += val
    assert sorted(seen) == list(range(14))
    assert folds == kfold(groups, 5, seed=3) and folds != kfold(groups, 5, seed=4)


def test_kfold_falls_back_to_images_when_few_subjects() -> None:
    folds = kfold(["a"] * 4 + ["b"] * 4, 4, seed=0)
    assert all(len(val) == 2 for _, val in folds)
    with pytest.raises(ValueError, match="cannot be split"):
        kfold(["a", "b"], 5, seed=0)


def test_random_tiles_seeded_by_index() -> None:
    samples = _samples(3, 3)
    a = RandomTiles(samples, tile=32, length=10, seed=7, stream=0)
    b = RandomTiles(samples, tile=32, length=10, seed=7, stream=0)
    other = RandomTiles(samples, tile=32, length=10, seed=7, stream=1)
    x = a[5]
    assert x["image"].shape == (1, 32, 32) and x["labels"].shape == (32, 32)
    assert np.array_equal(x["image"], b[5]["image"])
    assert not np.array_equal(x["image"], a[6]["image"])
    assert not np.array_equal(x["image"], other[5]["image"])
    # tiles are crops of a real image (geometric aug only moves pixels, never changes them)
    assert set(np.unique(x["labels"].numpy())) <= {0, 1, 2}


def test_tiles_of_images_smaller_than_tile() -> None:
    small = _samples(1, 1, size=20)
    assert RandomTiles(small, 32, 4, 0)[0]["image"].shape == (1, 32, 32)
    assert FixedTiles(small, 32)[0]["image"].shape == (1, 32, 32)


def test_epoch_sampler_fresh_indices_per_epoch() -> None:
    sampler = EpochSampler(4)
    first = list(sampler)
    sampler.set_epoch(1)
    assert first == [0, 1, 2, 3] and list(sampler) == [4, 5, 6, 7] and len(sampler) == 4


def test_epoch_sampler_resumes_mid_epoch_once() -> None:
    sampler = EpochSampler(6, skip=4)  # a run stopped after 2 batches of 2
    sampler.set_epoch(3)
    assert list(sampler) == [22, 23] and list(sampler) == [18, 19, 20, 21, 22, 23]


def test_resample_to_target_pixel_size() -> None:
    sample = _samples(1, 1, size=100)[0]
    factor = scale_factor(0.1, 0.2, None)
    out = resample(sample, factor)
    assert out.image.shape == (50, 50) and out.pixel_size == pytest.approx(0.2)
    assert set(np.unique(out.labels)) <= {0, 1, 2}
    assert scale_factor(0.1, 0.2, scale=3.0) == 3.0


def test_validation_tiles_spread_over_the_image() -> None:
    sample = _samples(1, 1, size=128)[0]  # a 128 x 128 image: 16 tiles of 32
    tiles = FixedTiles([sample], 32, per_image=4)
    rows = {
        int(
            np.argmax(
                [
                    np.array_equal(t["image"][0], sample.image[y : y + 32, 0:32])
                    for y in range(0, 128, 32)
                ]
            )
        )
        for t in tiles
    }
    assert len(tiles) == 4 and len(rows) > 1  # not only the top strip


def test_a_proxy_scored_on_held_out_u_refuses_fewer_subjects_than_folds(tmp_path) -> None:
    """Two folds of one rat would score the oracle on the rat it trained on: refused, naming
    segmenter.k; with a subject per fold, each fold records the subjects it was scored on."""
    run = overridden(
        TINY_RUN, "segmenter.strategies=[oracle]", "data.unlabeled.phantom.n_subjects=1"
    )
    with pytest.raises(ConfigError, match=r"(?s)segmenter.k.*1 subjects.*segmenter.k=1"):
        run_stages(compose_cfg(*run, tmp=tmp_path / "one"))
    cfg = compose_cfg(*overridden(run, "data.unlabeled.phantom.n_subjects=2"), tmp=tmp_path / "two")
    run_stages(cfg)
    results = json.loads((tmp_path / "two" / "out" / "results.json").read_text())
    assert len(results["strategies"]["oracle"]["folds"]["0"]["subjects"]) == 1
