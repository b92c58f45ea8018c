"""Stage `translate`: translate whole images of a domain with a trained translator.

L->U (tutorship) translates the labelled images and carries their labels across; U->L
(adaptation) translates U. The result is written in the input's layout under
`translate/<direction>/`, one image at a time, so a re-run skips images already written. With
`translator.sample.samples=N`, a direction that strategies segment gets N draws per image, the k-th
(k >= 1) in `translate/<direction>-draw<k>/` with its own key: changing N keeps the draws made.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from axondeepsynth import translator_check
from axondeepsynth.data import images, layouts, stitch
from axondeepsynth.data.domain import dataset_tags
from axondeepsynth.data.records import Sample
from axondeepsynth.inference import load_translator, translate_sample
from axondeepsynth.pipeline import keys
from axondeepsynth.pipeline.context import SOURCE, Run, Translation
from axondeepsynth.pipeline.stage_dir import once

log = logging.getLogger(__name__)


def run(run: Run) -> None:
    for direction in run.directions:
        translate_direction(run, direction)


def translate_direction(run: Run, direction: str) -> Translation:
    """Every draw of one direction's translations, made once each (their own directory and key)
    by the run's translator."""
    t = run.cfg.translator.sample
    trained = run.outputs.translator
    ckpt = str(t.ckpt_path or getattr(trained, t.which))
    seed = trained.seed if trained is not None else None
    batch_size = run.tiles_per_pass(t.batch_size)
    made = []
    for draw in range(run.draws(direction)):
        name = direction if draw == 0 else f"{direction}-draw{draw}"
        root = run.translations_dir(name)
        made.append(
            once(
                root,
                keys.translation(run.cfg, ckpt, direction, batch_size, draw, seed),
                lambda r=root, k=draw: _translate(run, ckpt, direction, r, batch_size, k),
                Translation,
            )
        )
    run.outputs.translations[direction] = replace(made[0], draws=[m.files for m in made[1:]])
    return run.outputs.translations[direction]


def label_separation(run: Run) -> dict | None:
    """The label separation (`translator_check.py`) of the run's L->U translations, or None
    when it has none."""
    made = run.outputs.translations.get("l2u")
    if made is None:
        return None
    return translator_check.label_separation(
        (s.key, s.image, images.read_image(made.files[s.key]), s.labels)
        for s in run.domain("L")
        if s.labels is not None and s.key in made.files
    )


def _translate(
    run: Run, ckpt: str, direction: str, root: Path, batch_size: int, draw: int
) -> Translation:
    """Translate every image of the source domain (the `draw`-th time: its own seeds); write
    each of its datasets in that dataset's layout, under `root` (one dataset) or `root/<tag>`
    (several)."""
    t = run.cfg.translator.sample
    module = load_translator(ckpt, run.device, compile=t.compile)
    source_cfg = run.domain_config(SOURCE[direction])
    target_cfg = run.domain_config("U" if SOURCE[direction] == "L" else "L")
    samples = run.domain(SOURCE[direction])
    tile, overlap = run.cfg.translator.data.tile_size, t.tile_overlap
    n_tiles = sum(stitch.count(s.image.shape, tile, overlap) for s in samples)
    position = {s.key: i for i, s in enumerate(samples)}  # seeds the sampler per image
    target = target_cfg.modality
    description = {
        "GeneratedBy": [
            {
                "Name": "axondeepsynth",
                "Description": f"{module.cfg.name} {direction} translation of "
                f"{source_cfg.describe()}",
                "Checkpoint": ckpt,
            }
        ]
    }

    def outputs(subset: list[Sample], out: Path, layout: layouts.Layout, bar: tqdm):
        """Translated samples, lazily; those an interrupted run already wrote come back as
        image=None and are not translated again."""
        for s in subset:
            if layout.image_path(s, out, target).is_file():
                bar.update(stitch.count(s.image.shape, tile, overlap))
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
                    t.seed + position[s.key] + draw * len(samples),
                    bar,
                    bf16=t.precision == "bf16",
                )

    files, roots = {}, []
    with tqdm(total=n_tiles, desc=f"translating {root.name}", unit="tile") as bar:
        for tag, dataset in zip(dataset_tags(source_cfg), source_cfg.datasets(), strict=True):
            subset = [s for s in samples if s.dataset == tag]
            out = root / tag if tag else root
            layout = layouts.detect(Path(dataset.root))  # it was read, so it has one
            paths = layout.write(outputs(subset, out, layout, bar), out, target, description)
            files |= {s.key: str(p) for s, p in zip(subset, paths, strict=True)}
            roots.append(str(out))
    log.info("translated %d images %s -> %s", len(samples), direction, root)
    return Translation(
        root=str(root),
        roots=roots,
        checkpoint=ckpt,
        sampler=str(t.sampler or module.cfg.train.sampler),
        files=files,
    )
