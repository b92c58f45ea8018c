"""k-fold splits at subject level (image level when there are fewer subjects than folds: the
training stage refuses that for proxies scored on their held-out folds)."""

from __future__ import annotations

import numpy as np


def kfold(groups: list[str], k: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """Split item indices into k (train, val) folds so that no group spans train and val.

    Groups are subjects; if fewer than k exist, each item is its own group.
    """
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2, got {k}")
    if len(groups) < k:
        raise ValueError(f"{len(groups)} images cannot be split into {k} folds")
    keys = sorted(set(groups))
    if len(keys) < k:
        groups, keys = [str(i) for i in range(len(groups))], [str(i) for i in range(len(groups))]
    order = np.random.default_rng(seed).permutation(len(keys))
    fold_of = {keys[j]: i % k for i, j in enumerate(order)}
    return [
        (
            [i for i, g in enumerate(groups) if fold_of[g] != f],
            [i for i, g in enumerate(groups) if fold_of[g] == f],
        )
        for f in range(k)
    ]


def splits(samples: list, k: int, seed: int) -> list[dict[str, list]]:
    """Per fold, the `train` and `val` samples (of objects with `.group`); with k = 1, one fold
    that trains and validates on everything."""
    if k == 1:
        return [{"train": list(samples), "val": list(samples)}]
    return [
        {"train": [samples[i] for i in train], "val": [samples[i] for i in val]}
        for train, val in kfold([s.group for s in samples], k, seed)
    ]
