"""`python -m axondeepsynth.segment MODEL_DIR INPUT [INPUT ...] [--out DIR] [--pixel-size UM]`:
segment new images with a kept model (a run's `model/`, `pipeline/export.py`).

An INPUT is a dataset folder in any layout we read (its images' pixel sizes from the layout's
sidecars) or an image file (its pixel size from `pixel_size_in_micrometer.txt` beside it, or
`--pixel-size`). Each image is resampled to the model's pixel size, translated into L's look
where the model's proxies expect it, segmented as the run's evaluation did, and its masks are
written at the image's own size in AxonDeepSeg's convention
(`<name>_seg-{axon,myelin,axonmyelin}.png`, `<name>_confidence.png`) under `--out`, in a tree
that mirrors the inputs' (no image is copied). Images without a pixel size, and outputs that
already exist, are refused before any work, one line each.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from axondeepsynth import postprocess
from axondeepsynth.config import PostprocessConfig
from axondeepsynth.data import images, layouts
from axondeepsynth.data.labels import to_masks
from axondeepsynth.data.records import ImageRecord, Sample, load_sample
from axondeepsynth.data.resample import resample, scale_factor
from axondeepsynth.errors import AxonDeepSynthError
from axondeepsynth.pipeline.export import MODEL_FILE

OUTPUTS = ("_seg-axon.png", "_seg-myelin.png", "_seg-axonmyelin.png", "_confidence.png")


@dataclass(frozen=True)
class Job:
    record: ImageRecord
    out: Path  # output folder of its masks


def find_images(inputs: list[Path], out: Path, pixel_size: float | None) -> list[Job]:
    """Every image of the inputs, with where its masks go (`out/<input name>/<path in it>`)."""
    jobs = []
    for path in inputs:
        if path.is_dir():
            index = layouts.scan(path)
            for problem in index.problems:
                print(f"warning: {problem}", file=sys.stderr)
            for record in index.records:
                parent = record.image.parent.relative_to(path)
                jobs.append(Job(record, out / path.name / parent))
        elif path.is_file():
            sidecar = path.parent / "pixel_size_in_micrometer.txt"
            size = _number(sidecar) if sidecar.is_file() else pixel_size
            record = ImageRecord(
                path,
                path.stem,
                path.stem,
                "file",
                pixel_size=size,
                pixel_size_from=f"{sidecar} or --pixel-size",
            )
            jobs.append(Job(record, out))
        else:
            raise AxonDeepSynthError(f"{path}: no such file or folder")
    return jobs


def _number(path: Path) -> float:
    try:
        return float(path.read_text().strip())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise AxonDeepSynthError(f"{path}: not a pixel size in µm ({err})") from None


def refusals(jobs: list[Job], pixel_size: float | None) -> list[str]:
    """One line per image that cannot be segmented as asked, before any work: no pixel size,
    an output that exists, or two images that would write the same outputs."""
    lines, taken = [], {}
    for job in jobs:
        r = job.record
        if r.pixel_size is None and pixel_size is None:
            lines.append(
                f"{r.image}: no pixel size (looked in {r.pixel_size_from}); pass "
                "--pixel-size <µm per pixel>"
            )
        first = job.out / f"{r.name}{OUTPUTS[0]}"
        if first in taken:
            lines.append(
                f"{r.image}: its masks would overwrite those of {taken[first]}; segment one "
                "of them with another --out"
            )
        taken[first] = r.image
        existing = [p for p in (job.out / f"{r.name}{end}" for end in OUTPUTS) if p.exists()]
        if existing:
            lines.append(
                f"{existing[0]}: already exists; pass another --out (nothing is overwritten)"
            )
    return lines


class KeptModel:
    """A kept model's proxies (and translator) as `model.json` describes them."""

    def __init__(self, root: Path, device: str = "cpu") -> None:
        from axondeepsynth.training import proxy

        meta_path = root / MODEL_FILE
        if not meta_path.is_file():
            raise AxonDeepSynthError(
                f"{root}: no {MODEL_FILE}\n  fix: pass the model/ folder of a finished run "
                "(written by its evaluate stage; seg.export picks the strategy)"
            )
        self.meta = meta = json.loads(meta_path.read_text())
        self.members = [
            (
                proxy.load(root / m["checkpoint"], device, meta["tta_flips"], meta["window"]),
                m["input"],
            )
            for m in meta["members"]
        ]
        self.translator = None
        if meta["translator"]:
            from axondeepsynth.pipeline.translate import load_translator

            t = meta["translator"]
            self.translator = load_translator(root / t["checkpoint"], device, sampler=t["sampler"])

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities [C, H, W] of an image at the model's pixel size."""
        from axondeepsynth.training import proxy

        m = self.meta
        shown = {"U": [image]}
        if self.translator is not None:
            shown["U2L"] = self._translations(image)
        members = [(model, shown[what]) for model, what in self.members]
        return proxy.ensemble(members, m["tile"], m["overlap"], 1)

    def _translations(self, image: np.ndarray) -> list[np.ndarray]:
        """The draws of its U->L translation, 8-bit like the run's written translations (the
        same images for a deterministic sampler; a stochastic one draws new ones)."""
        from axondeepsynth.pipeline.translate import translate_sample

        t = self.meta["translator"]
        sample = Sample("image", "image", image, self.meta["pixel_size_um"], None, Path("image"))
        draws = []
        for draw in range(t["samples"]):
            made = translate_sample(
                self.translator,
                sample,
                "u2l",
                t["tile"],
                t["overlap"],
                t["batch_size"],
                t["sampler"],
                t["seed"] + draw,
                bf16=t["precision"] == "bf16",
            )
            draws.append((np.rint(made.image * 255) / 255).astype(np.float32))
        return draws


def segment(model: KeptModel, job: Job, pixel_size: float | None) -> None:
    """Segment one image and write its masks and confidence map at its stored size."""
    from axondeepsynth.pipeline.evaluate import confidence
    from axondeepsynth.training import proxy

    m = model.meta
    native = load_sample(job.record, pixel_size)
    factor = scale_factor(native.pixel_size, m["pixel_size_um"], None)
    working = resample(replace(native, labels=None), factor, m["resize"])
    probs = proxy.resized(model.probabilities(working.image), native.image.shape)
    cleaning = PostprocessConfig(**m.get("postprocess", {}))  # kept before it: none
    pred = postprocess.clean(probs.argmax(0).astype(np.uint8), native.pixel_size, cleaning)
    name = job.record.name
    for kind, mask in to_masks(pred).items():
        images.write_png(job.out / f"{name}_seg-{kind}.png", mask)  # the first three OUTPUTS
    images.write_png(job.out / f"{name}{OUTPUTS[-1]}", confidence(probs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m axondeepsynth.segment", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("model", type=Path, help="a run's model/ folder")
    parser.add_argument("inputs", type=Path, nargs="+", help="dataset folders or image files")
    parser.add_argument("--out", type=Path, default=Path("segmented"), help="where masks go")
    parser.add_argument("--pixel-size", type=float, help="µm per pixel of images without one")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    try:
        jobs = find_images(args.inputs, args.out, args.pixel_size)
        problems = refusals(jobs, args.pixel_size)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 2
        model = KeptModel(args.model, args.device)
        for job in tqdm(jobs, desc="segmenting", unit="img"):
            segment(model, job, args.pixel_size)
    except AxonDeepSynthError as err:
        print(err, file=sys.stderr)
        return 2
    print(
        f"{len(jobs)} images segmented with {args.model} ({model.meta['strategy']}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
