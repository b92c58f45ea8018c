"""Inference with trained models, for both the pipeline and `segment`: a translator loaded from
its checkpoint and run over a whole image, and the confidence of a segmentation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from axondeepsynth.data import stitch
from axondeepsynth.data.records import Sample
from axondeepsynth.errors import ConfigError
from axondeepsynth.training import translators

MODEL_FILE = "model.json"  # what describes a kept model's folder (pipeline/export.py writes it)


def load_translator(
    path: str | Path,
    device: torch.device | str = "cpu",
    compile: bool = False,
    sampler: str | None = None,
    samples: int = 1,
) -> translators.Translator:
    """A trained translator of any registered kind from its checkpoint, refused with one line
    when unreadable, without the `sampler` asked for, or unable to make `samples` draws differ;
    its networks compiled when asked."""
    module = translators.load(path, device)
    if sampler is not None and sampler not in module.samplers:
        raise ConfigError(
            "translator.sample.sampler",
            f"the translator in {path} ({module.cfg.name}) has no {sampler} sampler",
            f"use translator.sample.sampler={' or '.join(module.samplers)}",
        )
    translators.check_draws(module, sampler or module.cfg.train.sampler, samples)
    return compile_networks(module) if compile else module


def compile_networks(module: translators.Translator) -> translators.Translator:
    """Compile the translator's inference networks with inductor, their weights frozen as
    constants (folded and pre-packed for the convolution library). Static shapes: a new tile
    batch size compiles once."""
    nets = module.inference_networks()
    for name in list(nets):
        nets[name] = torch.compile(nets[name], dynamic=False, options={"freezing": True})
    return module


def translate_sample(
    module: translators.Translator,
    sample: Sample,
    direction: str,
    tile: int,
    overlap: int,
    batch_size: int,
    sampler: str | None,
    seed: int,
    progress=None,
    bf16: bool = False,
) -> Sample:
    """Translate one whole image, tiles batched and blended; labels are carried along.

    Runs under inference mode, and bf16 autocast when asked.
    """
    gen = torch.Generator(module.device).manual_seed(seed)

    def translate(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(module.device.type, torch.bfloat16, enabled=bf16):
            return module.translate(x, direction, sampler, gen).float()

    with torch.inference_mode():
        image = stitch.sliding_window(
            sample.image,
            translate,
            tile,
            overlap,
            batch_size,
            device=module.device,
            dtype=module.dtype,
            on_batch=progress.update if progress else None,
        )
    return replace(sample, image=image[0].clip(0.0, 1.0))


def confidence(probs: np.ndarray) -> np.ndarray:
    """Per pixel, the largest of the class probabilities averaged over a strategy's models,
    translation draws and test-time flips: 1 where every member is sure of one class, 1/C
    where they cancel out."""
    return probs.max(0)


def image_confidence(conf: np.ndarray, pred: np.ndarray) -> float:
    """One number per image: mean confidence over the pixels labelled axon or myelin (over all
    pixels when there are none), where a person would look for mistakes."""
    fibres = pred > 0
    return float(conf[fibres].mean() if fibres.any() else conf.mean())
