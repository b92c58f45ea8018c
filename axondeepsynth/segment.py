"""`python -m axondeepsynth.segment MODEL_DIR INPUT [INPUT ...] [--out DIR] [--pixel-size UM]`:
segment new images with a kept model (a run's `model/`, `pipeline/export.py`).

An INPUT is a dataset folder in any layout we read (its images' pixel sizes from the layout's
sidecars) or an image file (its pixel size from `pixel_size_in_micrometer.txt` beside it, or
`--pixel-size`). Each image is resampled to the model's pixel size, translated into L's look
where the model's proxies expect it, segmented as the run's evaluation did, and its masks are
written at the image's own size in AxonDeepSeg's convention
(`<name>_seg-{axon,myelin,axonmyelin}.png`, `<name>_confidence.png`) under `--out`, in a tree
that mirrors the inputs' (no image is copied). Only images of the model's modality are taken
from a dataset (`--modality` for others); masks beside them are not read. Images without a
pixel size, and outputs that exist and were not written by this model into this `--out`, are
refused before any work, one line each. `--out/segment.json` records each image once its
outputs are whole, and the one being written, so a run stopped anywhere (kill -9 mid-write
included) started again continues where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from axondeepsynth import io, postprocess
from axondeepsynth.data import images, layouts, stitch
from axondeepsynth.data.labels import to_masks
from axondeepsynth.data.records import ImageRecord, Sample, no_pixel_size, pixel_size_of
from axondeepsynth.data.resample import resample, scale_factor
from axondeepsynth.errors import AxonDeepSynthError
from axondeepsynth.inference import MODEL_FILE
from axondeepsynth.postprocess import PostprocessConfig

OUTPUTS = ("_seg-axon.png", "_seg-myelin.png", "_seg-axonmyelin.png", "_confidence.png")
BLOCK = 2048  # px a side at the model's pixel size: larger images are segmented by blocks


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
        value = float(path.read_text().strip())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise AxonDeepSynthError(f"{path}: not a pixel size in µm ({err})") from None
    if not (math.isfinite(value) and 1e-4 <= value <= 100):
        raise AxonDeepSynthError(
            f"{path}: {value} is not a pixel size in µm (0.0001-100); write the image's µm per "
            "pixel there"
        )
    return value


def of_modality(jobs: list[Job], modality: str | None) -> list[Job]:
    """The jobs whose image is of `modality` (or says none), with a note on those left out."""
    if modality is None:
        return jobs
    kept = [j for j in jobs if j.record.modality in (None, modality)]
    others = Counter(j.record.modality for j in jobs if j not in kept)
    if others:
        found = ", ".join(f"{n} {m}" for m, n in sorted(others.items()))
        print(
            f"note: {found} images left out: the model segments {modality} "
            f"(--modality <suffix> to segment another)",
            file=sys.stderr,
        )
    return kept


class Record:
    """`<out>/segment.json`: the model that writes into `out`, the images it has finished and
    the one it was writing (by their first output's path). A re-run with that model skips the
    finished ones and writes over the outputs of one it was stopped in (kill -9 included)."""

    def __init__(self, out: Path, model: Path) -> None:
        self.path = out / "segment.json"
        self.model = hashlib.sha1((model / MODEL_FILE).read_bytes()).hexdigest()[:12]
        self.done: dict[str, str] = {}
        self.writing: dict[str, str] = {}
        if self.path.is_file():
            try:
                kept = json.loads(self.path.read_text())
                if kept["model"] == self.model:
                    self.done = dict(kept["done"])
                    self.writing = dict(kept.get("writing", {}))  # records before it: none
            except (ValueError, KeyError, TypeError):
                raise AxonDeepSynthError(
                    f"{self.path}: not a record of this tool; remove it, or pass another --out"
                ) from None

    @staticmethod
    def _key(job: Job) -> str:
        return str(job.out / f"{job.record.name}{OUTPUTS[0]}")

    def finished(self, job: Job) -> bool:
        return self._key(job) in self.done

    def started(self, job: Job) -> bool:
        """This model began writing the job's outputs and was stopped."""
        return self._key(job) in self.writing

    def start(self, job: Job) -> None:
        self.writing = {self._key(job): str(job.record.image)}
        self._save()

    def add(self, job: Job) -> None:
        self.done[self._key(job)] = str(job.record.image)
        self.writing = {}
        self._save()

    def _save(self) -> None:
        record = {"model": self.model, "done": self.done, "writing": self.writing}
        io.write_text(self.path, json.dumps(record, indent=1))


def refusals(jobs: list[Job], pixel_size: float | None, record: Record) -> list[str]:
    """One line per image that cannot be segmented as asked, before any work: no pixel size,
    an output that exists (but those of the image `record` was stopped in), or two images that
    would write the same outputs."""
    lines, taken = [], {}
    for job in jobs:
        r = job.record
        if r.pixel_size is None and pixel_size is None:
            lines.append(f"{r.image}: {no_pixel_size(r)}; pass --pixel-size <µm per pixel>")
        first = job.out / f"{r.name}{OUTPUTS[0]}"
        if first in taken:
            lines.append(
                f"{r.image}: its masks would overwrite those of {taken[first]}; segment one "
                "of them with another --out"
            )
        taken[first] = r.image
        existing = [p for p in (job.out / f"{r.name}{end}" for end in OUTPUTS) if p.exists()]
        if existing and not record.started(job):
            lines.append(
                f"{existing[0]}: already exists; pass another --out (nothing is overwritten)"
            )
    return lines


def read_meta(root: Path) -> dict:
    """A kept model's `model.json`, refused in one line when missing or not JSON."""
    path = root / MODEL_FILE
    fix = "pass the model/ folder of a finished run (export.model picks the strategy)"
    if not path.is_file():
        raise AxonDeepSynthError(f"{root}: no {MODEL_FILE}\n  fix: {fix}")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise AxonDeepSynthError(f"{path}: not JSON ({err})\n  fix: {fix}") from None
    problem = _meta_problem(meta, root)
    if problem:
        raise AxonDeepSynthError(f"{path}: {problem}\n  fix: {fix}")
    return meta


def _meta_problem(meta: object, root: Path) -> str | None:
    """What makes a model.json unusable (an edit, a partial copy), or None."""
    if not isinstance(meta, dict):
        return "not a kept model's record"

    def positive(key: str, kind: type) -> bool:
        value = meta.get(key)
        ok = isinstance(value, kind) and not isinstance(value, bool) and value > 0
        return ok and math.isfinite(value)

    if not positive("pixel_size_um", float | int):
        return f"pixel_size_um is {meta.get('pixel_size_um')!r}, not a pixel size in µm"
    for key in ("tile", "overlap"):
        if not (positive(key, int) or (key == "overlap" and meta.get(key) == 0)):
            return f"{key} is {meta.get(key)!r}, not a number of pixels"
    members = meta.get("members")
    if not isinstance(members, list) or not members:
        return "it lists no members (proxies)"
    for m in members:
        if not isinstance(m, dict) or not isinstance(m.get("checkpoint"), str):
            return f"member {m!r} names no checkpoint"
        if not (root / m["checkpoint"]).is_file():
            return f"its checkpoint {root / m['checkpoint']} is missing"
        if m.get("input") not in ("U", "U2L"):
            return f"member input {m.get('input')!r} is neither U nor U2L"
    return None


class KeptModel:
    """A kept model's proxies (and translator) as `model.json` describes them."""

    def __init__(self, root: Path, device: str = "cpu") -> None:
        from axondeepsynth.training import proxy

        self.meta = meta = read_meta(root)
        self.members = [
            (
                proxy.load(
                    root / m["checkpoint"],
                    device,
                    meta["tta_flips"],
                    meta["window"],
                    meta.get("precision", "32"),  # models kept before it was recorded: fp32
                ),
                m["input"],
            )
            for m in meta["members"]
        ]
        self.translator = None
        if meta["translator"]:
            from axondeepsynth.inference import load_translator

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
        from axondeepsynth.inference import translate_sample

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


def for_axondeepseg(jobs: list[Job]) -> list[Job]:
    """Each image's outputs in a folder of their own, where `write_beside` puts a link to the
    image and its pixel size: the folder AxonDeepSeg's own commands take as it is."""
    return [replace(job, out=job.out / job.record.name) for job in jobs]


def write_beside(job: Job, pixel_size: float) -> None:
    """A link to the image (named like its masks) and `pixel_size_in_micrometer.txt` in its
    output folder, so `axondeepseg_morphometrics -i <folder>/<image>` runs there unchanged."""
    link = job.out / f"{job.record.name}{job.record.image.suffix}"
    if not link.is_symlink():
        link.symlink_to(job.record.image.resolve())
    io.write_text(job.out / "pixel_size_in_micrometer.txt", f"{pixel_size}\n")


def segment(
    model: KeptModel,
    job: Job,
    pixel_size: float | None,
    beside: bool = False,
    block: int = BLOCK,
) -> None:
    """Segment one image and write its masks and confidence map at its stored size."""
    ps = pixel_size_of(job.record, pixel_size)
    pred, conf = predict(model, job.record, ps, block)
    name = job.record.name
    images.write_png(job.out / f"{name}{OUTPUTS[-1]}", conf)
    del conf
    for kind, mask in to_masks(pred):
        images.write_png(job.out / f"{name}_seg-{kind}.png", mask)  # the first three OUTPUTS
        del mask  # before the next is made
    if beside:
        write_beside(job, ps)


def predict(
    model: KeptModel, record: ImageRecord, ps: float, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """The cleaned labels and the 8-bit confidence of an image at its stored size.

    An image larger than `block` px a side at the model's pixel size is segmented block by
    block, each read with a margin of context and normalised on its own (as the proxies'
    training images were), into 8-bit maps: memory follows the block, not the mosaic, apart
    from the stored image and these two maps.
    """
    from axondeepsynth.inference import confidence
    from axondeepsynth.training import proxy

    m = model.meta
    gray, to_unit = images.read_gray(record.image)  # masks are not needed
    factor = scale_factor(ps, m["pixel_size_um"], None)
    tile = max(m["tile"], (m["translator"] or {}).get("tile", 0))
    native_block, margin = (math.ceil(n / factor) for n in (block, tile))
    cleaning = PostprocessConfig(**m.get("postprocess", {}))  # kept before it: none
    pred, conf = np.empty(gray.shape, np.uint8), np.empty(gray.shape, np.uint8)
    parts = list(stitch.blocks(gray.shape, native_block, margin))
    for region, core, inner in tqdm(parts, desc="blocks", leave=False, disable=len(parts) == 1):
        part = Sample(record.name, record.subject, to_unit(gray[region]), ps, None, record.image)
        working = resample(part, factor, m["resize"])
        probs = proxy.resized(model.probabilities(working.image), part.image.shape)
        labels = postprocess.clean(probs.argmax(0).astype(np.uint8), ps, cleaning, part.image)
        pred[core], conf[core] = labels[inner], images.as_uint8(confidence(probs)[inner])
    return pred, conf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m axondeepsynth.segment", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("model", type=Path, help="a run's model/ folder")
    parser.add_argument("inputs", type=Path, nargs="+", help="dataset folders or image files")
    parser.add_argument("--out", type=Path, default=Path("segmented"), help="where masks go")
    parser.add_argument("--pixel-size", type=float, help="µm per pixel of images without one")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--block",
        type=int,
        default=BLOCK,
        help=f"larger images are segmented in blocks of this many px a side at the model's "
        f"pixel size, each with context around it, so memory follows the block (default {BLOCK})",
    )
    parser.add_argument("--modality", help="BIDS suffix to segment (default: the model's)")
    parser.add_argument(
        "--axondeepseg",
        action="store_true",
        help="a folder per image, with a link to it and its pixel_size_in_micrometer.txt, that "
        "AxonDeepSeg's commands (axondeepseg_morphometrics -i) take as it is",
    )
    args = parser.parse_args(argv)
    try:
        _check_arguments(args)
        meta = read_meta(args.model)
        jobs = find_images(args.inputs, args.out, args.pixel_size)
        jobs = of_modality(jobs, args.modality or meta.get("modality"))
        if args.axondeepseg:
            jobs = for_axondeepseg(jobs)
        if not jobs:
            raise AxonDeepSynthError(
                f"{', '.join(map(str, args.inputs))}: no images to segment found"
            )
        record = Record(args.out, args.model)
        todo = [job for job in jobs if not record.finished(job)]
        problems = refusals(todo, args.pixel_size, record)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 2
        if len(todo) < len(jobs):
            print(
                f"note: {len(jobs) - len(todo)} images already segmented, skipped", file=sys.stderr
            )
        model = KeptModel(args.model, args.device)
        for job in tqdm(todo, desc="segmenting", unit="img"):
            record.start(job)
            segment(model, job, args.pixel_size, args.axondeepseg, args.block)
            record.add(job)
    except AxonDeepSynthError as err:
        print(err, file=sys.stderr)
        return 2
    except OSError as err:  # a read-only or full --out, a file gone while reading
        print(f"{err.filename}: {err.strerror} (fix: pass a writable --out)", file=sys.stderr)
        return 2
    print(f"{len(jobs)} images segmented with {args.model} ({meta['strategy']}) -> {args.out}")
    return 0


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse, in one line, a pixel size that is not a positive finite number, a block too small
    to hold a tile with its context, or a GPU that is not there."""
    size = args.pixel_size
    if size is not None and not (math.isfinite(size) and 1e-4 <= size <= 100):
        raise AxonDeepSynthError(
            f"--pixel-size {size}: not a pixel size in µm; pass the images' µm per pixel "
            "(0.0001-100, e.g. --pixel-size 0.05)"
        )
    if args.block < 64:
        raise AxonDeepSynthError(f"--block {args.block}: too small; use 64 px or more")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise AxonDeepSynthError(f"--device {args.device}: no GPU here; use --device cpu")


if __name__ == "__main__":
    sys.exit(main())
