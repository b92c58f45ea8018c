"""nnU-Net v2 as the segmentation proxy (`segmenter.backend=nnunet`), through its Python API.

A training set becomes one nnU-Net raw dataset (written by our nnU-Net layout), fingerprinted,
planned and preprocessed once for the configured configuration (`2d`), with our k-fold split by
subject written as nnU-Net's `splits_final.json`. Each fold trains, into a results folder of
its own (inside the fold's stage directory), with the configured trainer class on the run's
device (epochs and iterations overridable for short runs); `Proxy` segments
whole images with nnU-Net's own predictor (Gaussian sliding window, mirroring) and returns class
probabilities, as the Lightning proxy does. nnU-Net's folders (`nnUNet_raw`, `_preprocessed`,
`_results`) live in the run directory, set for the length of each call and restored after.
Optional: `pip install -e '.[nnunet]'`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from axondeepsynth import io
from axondeepsynth.data.layouts import nnunet as raw_layout
from axondeepsynth.data.records import Sample
from axondeepsynth.training.config import NnUNetConfig

DATASET_ID = 501  # one dataset per training set, each in its own folders
SPACING = [999.0, 1.0, 1.0]  # what nnU-Net's 2-D PNG reader gives every image
FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


@contextmanager
def folders(
    base: Path, processes: int, log: Path | None = None, results: Path | None = None
) -> Iterator[None]:
    """nnU-Net's folders `raw`, `preprocessed` and `results` under `base` (results elsewhere
    if given) and its augmentation workers, for the length of the block, the previous
    environment restored after; nnU-Net's prints go to `log`."""
    values = {name: str(base / name.removeprefix("nnUNet_")) for name in FOLDERS}
    if results is not None:
        values["nnUNet_results"] = str(results)
    values["nnUNet_n_proc_DA"] = str(processes)
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        if log is None:
            yield
        else:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as stream, redirect_stdout(stream):
                yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def prepare(
    samples: list[Sample], base: Path, name: str, splits: list[dict], cfg: NnUNetConfig
) -> tuple[str, str]:
    """Write `samples` as nnU-Net raw dataset `name`, plan and preprocess it, and record
    `splits` (per fold, the train and val sample keys); return (dataset, plans identifier)."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )

    dataset = f"Dataset{DATASET_ID}_{name}"
    by_key = raw_layout.case_names(s.key for s in samples)
    cases = [replace(s, name=by_key[s.key]) for s in samples]
    workers = cfg.processes
    with folders(base, cfg.processes, base / "nnunet.log"):
        raw_layout.write(cases, base / "raw" / dataset, None, {"Name": dataset})
        extract_fingerprints([DATASET_ID], num_processes=workers, check_dataset_integrity=True)
        plans = plan_experiments([DATASET_ID], cfg.planner, cfg.gpu_memory_target_gb)
        preprocess([DATASET_ID], plans, [cfg.configuration], [workers])
    folds = [
        {part: [by_key[k] for k in fold[part]] for part in ("train", "val")} for fold in splits
    ]
    io.write_text(base / "preprocessed" / dataset / "splits_final.json", json.dumps(folds))
    return dataset, plans


def train(
    base: Path,
    dataset: str,
    plans: str,
    fold: int,
    cfg: NnUNetConfig,
    device: str,
    resume: bool,
    results: Path,
) -> tuple[Path, dict[str, float]]:
    """Train one fold of the dataset prepared under `base` into `results` (continuing from its
    own newest checkpoint there when `resume`); return its output folder and nnU-Net's last
    validation Dice per class."""
    from nnunetv2.run.run_training import get_trainer_from_args, maybe_load_checkpoint

    with folders(base, cfg.processes, results / "nnunet.log", results):
        trainer = get_trainer_from_args(
            dataset, cfg.configuration, fold, cfg.trainer, plans, resume, torch.device(device)
        )
        for attribute, value in (
            ("num_epochs", cfg.epochs),
            ("num_iterations_per_epoch", cfg.iterations_per_epoch),
            ("num_val_iterations_per_epoch", cfg.val_iterations_per_epoch),
            ("save_every", cfg.save_every),
        ):
            if value is not None:
                setattr(trainer, attribute, value)
        maybe_load_checkpoint(trainer, resume, False)
        trainer.run_training()
    myelin, axon = trainer.logger.get_value("dice_per_class_or_region", None)[-1]
    val = {"val/dice_myelin": float(myelin), "val/dice_axon": float(axon)}
    val["val/dice_mean"] = (val["val/dice_myelin"] + val["val/dice_axon"]) / 2
    return Path(trainer.output_folder), val


class Proxy:
    """One trained nnU-Net fold, segmenting whole [0, 1] images like the Lightning proxy."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", mirroring: bool = True):
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        checkpoint = Path(checkpoint)
        self.predictor = nnUNetPredictor(
            use_mirroring=mirroring,
            perform_everything_on_device=device == "cuda",
            device=torch.device(device),
            allow_tqdm=False,
        )
        fold = checkpoint.parent.name.removeprefix("fold_")
        self.predictor.initialize_from_trained_model_folder(
            str(checkpoint.parent.parent),
            (fold if fold == "all" else int(fold),),
            checkpoint.name,
        )

    def predict_proba(self, image: np.ndarray, *tiling) -> np.ndarray:
        """Class probabilities [C, H, W] of an HxW image in [0, 1] (nnU-Net picks its own
        patch and step: `tiling` is the Lightning proxy's, unused)."""
        x = np.asarray(image, np.float32)[None, None] * 255.0  # as its 8-bit PNGs were read
        _, probs = self.predictor.predict_single_npy_array(
            x, {"spacing": SPACING}, None, None, True
        )
        return np.asarray(probs[:, 0], np.float32)


def with_legacy_keys(plans: dict) -> dict:
    """nnU-Net 2.4+ plans with the flat network keys of older releases beside `architecture`
    (derived from its `arch_kwargs`), so nnU-Net 2.2 (AxonDeepSeg 5.5's) builds the same U-Net."""
    out = json.loads(json.dumps(plans))
    for conf in out.get("configurations", {}).values():
        arch = conf.get("architecture")
        if not arch:  # a configuration that inherits its network
            continue
        kw = arch["arch_kwargs"]
        strides = kw["strides"]
        conf.setdefault("UNet_class_name", arch["network_class_name"].rsplit(".", 1)[-1])
        conf.setdefault("UNet_base_num_features", kw["features_per_stage"][0])
        conf.setdefault("unet_max_num_features", max(kw["features_per_stage"]))
        conf.setdefault("conv_kernel_sizes", kw["kernel_sizes"])
        conf.setdefault("pool_op_kernel_sizes", strides)
        conf.setdefault("n_conv_per_stage_encoder", kw["n_conv_per_stage"])
        conf.setdefault("n_conv_per_stage_decoder", kw["n_conv_per_stage_decoder"])
        conf.setdefault(
            "num_pool_per_axis",
            [sum(s[axis] > 1 for s in strides) for axis in range(len(strides[0]))],
        )
    return out
