"""Stage `translate`: translate whole images of a domain with a trained translator.

L->U (tutorship) translates the labelled images and carries their labels across; U->L
(adaptation) translates U. The result is written in the input's layout under
`translate/<direction>/`, one image at a time, so a re-run skips images already written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from axondeepsynth.data import formats, tiling
from axondeepsynth.data.images import write_text
from axondeepsynth.data.records import Sample
from axondeepsynth.errors import ConfigError
from axondeepsynth.modules.translator import SynDiff
from axondeepsynth.pipeline.context import Run

log = logging.getLogger(__name__)
SOURCE = {"l2u": "L", "u2l": "U"}


def load_translator(path: str | Path, device: torch.device | str = "cpu") -> SynDiff:
    """A trained translator from a Lightning checkpoint (loaded with weights_only=True)."""
    if not Path(path).is_file():
        raise ConfigError(
            "translator.ckpt_path",
            f"checkpoint {path} not found",
            "point it at a translator/checkpoints/*.ckpt of an earlier run",
        )
    module = SynDiff.load_from_checkpoint(path, map_location=device, weights_only=True)
    return module.eval()


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
) -> Sample:
    """Translate one whole image tile by tile (blended overlaps); labels are carried along."""
    gen = torch.Generator(module.device).manual_seed(seed)
    image = tiling.sliding_window(
        sample.image,
        lambda x: module.translate(x, direction, sampler, gen),
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
    ckpt = t.ckpt_path or run.artifacts.get("translator_ckpt")
    if not ckpt:
        raise ConfigError(
            "translator.ckpt_path",
            "no translator to use",
            "add train_translator to stages or pass translator.ckpt_path=...",
        )
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu"
    module = load_translator(ckpt, device)
    outputs = {}
    for direction in t.directions:
        source = SOURCE[direction]
        target_cfg = run.domain_config("U" if source == "L" else "L")
        samples = run.domain(source)
        index = formats.scan(
            Path(run.domain_config(source).root), run.domain_config(source).modality
        )
        root = run.out / "translate" / direction
        n_tiles = sum(
            tiling.count(s.image.shape, cfg.data.tile_size, cfg.data.tile_overlap) for s in samples
        )
        names = [s.name for s in samples]
        with tqdm(total=n_tiles, desc=f"translating {direction}", unit="tile") as bar:
            translated = (
                translate_sample(
                    module,
                    sample,
                    direction,
                    cfg.data.tile_size,
                    cfg.data.tile_overlap,
                    t.batch_size,
                    t.sampler,
                    t.seed + i,
                    bar,
                )
                for i, sample in enumerate(samples)
            )
            description = {
                "GeneratedBy": [
                    {
                        "Name": "axondeepsynth",
                        "Description": f"SynDiff {direction} translation of "
                        f"{run.domain_config(source).root}",
                        "Checkpoint": str(ckpt),
                    }
                ]
            }
            formats.write(translated, root, index.layout, target_cfg.modality, description)
        write_text(
            root / "translation.json",
            json.dumps(
                {
                    "checkpoint": str(ckpt),
                    "direction": direction,
                    "sampler": t.sampler or module.cfg.sampler,
                    "seed": t.seed,
                    "images": names,
                },
                indent=2,
            ),
        )
        outputs[direction] = str(root)
        log.info("translated %d images %s -> %s", len(names), direction, root)
    return {"translated": outputs}
