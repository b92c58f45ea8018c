"""Stage `translate`: translate whole images of a domain with a trained translator.

L->U (tutorship) translates the labelled images and carries their labels across; U->L
(adaptation) translates U. The result is written in the input's layout under
`translate/<direction>/`, one image at a time, so a re-run skips images already written.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from axondeepsynth.data import formats, tiling
from axondeepsynth.data.domain import dataset_tags
from axondeepsynth.data.records import Sample
from axondeepsynth.errors import ConfigError
from axondeepsynth.modules.translator import SynDiff
from axondeepsynth.pipeline.artifacts import config_hash, once
from axondeepsynth.pipeline.context import Run

log = logging.getLogger(__name__)
SOURCE = {"l2u": "L", "u2l": "U"}


def load_translator(
    path: str | Path, device: torch.device | str = "cpu", compile: bool = False
) -> SynDiff:
    """A trained translator from a Lightning checkpoint (loaded with weights_only=True), with
    its generators compiled for inference when asked."""
    if not Path(path).is_file():
        raise ConfigError(
            "translator.ckpt_path",
            f"checkpoint {path} not found",
            "point it at a translator/checkpoints/*.ckpt of an earlier run",
        )
    try:
        module = SynDiff.load_from_checkpoint(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated, foreign, pickled code: all refused alike
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:160]
        raise ConfigError(
            "translator.ckpt_path",
            f"{path} is not a readable translator checkpoint ({reason})",
            "point it at translator/checkpoints/last.ckpt (or best-*.ckpt) of an earlier run",
        ) from None
    return compile_generators(module.eval()) if compile else module.eval()


def compile_generators(module: SynDiff) -> SynDiff:
    """Compile the EMA generators with inductor, their weights frozen as constants (folded and
    pre-packed for the convolution library). Static shapes: a new tile batch size compiles once."""
    nets = module.G_ema.module
    for name in list(nets):
        nets[name] = torch.compile(nets[name], dynamic=False, options={"freezing": True})
    return module


def translate_sample(
    module: SynDiff,
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
        image = tiling.sliding_window(
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


def run(run: Run) -> dict:
    cfg, t = run.cfg, run.cfg.translator
    ckpt = t.ckpt_path or run.artifacts.get(f"translator_{t.checkpoint}")
    if not ckpt:
        raise ConfigError(
            "translator.ckpt_path",
            "no translator to use",
            "add train_translator to stages or pass translator.ckpt_path=...",
        )
    batch_size = run.tiles_per_pass(t.batch_size)
    translated = {}
    for direction in run.directions:
        root = run.translator_dir / "translate" / direction
        key = config_hash(
            t.precision,
            t.compile,
            batch_size,  # the batch shapes the noise stream of the diffusive sampler
            str(ckpt),
            direction,
            t.sampler,
            t.seed,
            cfg.data.tile_size,
            cfg.data.tile_overlap,
            asdict(run.domain_config(SOURCE[direction])),
            cfg.data.target_pixel_size,
        )
        translated[direction] = once(
            root,
            key,
            lambda d=direction, r=root: _translate(run, str(ckpt), d, r, batch_size),
        )["translated"]
    return {"translated": run.artifacts.get("translated", {}) | translated}


def _translate(run: Run, ckpt: str, direction: str, root: Path, batch_size: int) -> dict:
    """Translate every image of the source domain; write each of its datasets in that dataset's
    layout, under `root` (one dataset) or `root/<tag>` (several)."""
    cfg, t = run.cfg, run.cfg.translator
    module = load_translator(ckpt, run.device, compile=t.compile)
    source_cfg = run.domain_config(SOURCE[direction])
    target_cfg = run.domain_config("U" if SOURCE[direction] == "L" else "L")
    samples = run.domain(SOURCE[direction])
    tile, overlap = cfg.data.tile_size, cfg.data.tile_overlap
    n_tiles = sum(tiling.count(s.image.shape, tile, overlap) for s in samples)
    position = {s.key: i for i, s in enumerate(samples)}  # seeds the sampler per image
    target = target_cfg.modality
    description = {
        "GeneratedBy": [
            {
                "Name": "axondeepsynth",
                "Description": f"SynDiff {direction} translation of {source_cfg.describe()}",
                "Checkpoint": ckpt,
            }
        ]
    }

    def outputs(subset: list[Sample], out: Path, layout: str, bar: tqdm):
        """Translated samples, lazily; those an interrupted run already wrote come back as
        image=None and are not translated again."""
        for s in subset:
            if formats.image_path(s, out, layout, target).is_file():
                bar.update(tiling.count(s.image.shape, tile, overlap))
                yield replace(s, image=None)
            else:
                yield translate_sample(
                    module,
                    s,
                    direction,
                    tile,
                    overlap,
                    batch_size,
                    t.sampler,
                    t.seed + position[s.key],
                    bar,
                    bf16=t.precision == "bf16",
                )

    files, roots = {}, []
    with tqdm(total=n_tiles, desc=f"translating {direction}", unit="tile") as bar:
        for tag, dataset in zip(dataset_tags(source_cfg), source_cfg.datasets(), strict=True):
            subset = [s for s in samples if s.dataset == tag]
            out = root / tag if tag else root
            layout = formats.detect_layout(Path(dataset.root))
            paths = formats.write(
                outputs(subset, out, layout, bar), out, layout, target, description
            )
            files |= {s.key: str(p) for s, p in zip(subset, paths, strict=True)}
            roots.append(str(out))
    log.info("translated %d images %s -> %s", len(samples), direction, root)
    return {
        "translated": {
            "root": str(root),
            "roots": roots,
            "checkpoint": ckpt,
            "sampler": t.sampler or module.cfg.sampler,
            "files": files,
        }
    }
