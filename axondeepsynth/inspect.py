"""`python -m axondeepsynth.inspect PATH [--json]`: what a dataset holds and what is wrong with it.

Reads every image and mask once (never writes), like nnU-Net's dataset integrity check.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from axondeepsynth.data import formats, images
from axondeepsynth.data.records import ImageRecord, Problem, check_mask_shape, read_labels
from axondeepsynth.errors import AxonDeepSynthError, DataError


@dataclass
class ImageSummary:
    name: str
    path: str
    subject: str
    modality: str | None
    width: int | None = None
    height: int | None = None
    dtype: str | None = None
    channels: int | None = None
    pixel_size_um: float | None = None
    pixel_size_from: str = ""
    labels: list[str] = field(default_factory=list)
    label_fractions: dict[str, float] = field(default_factory=dict)


def summarise(record: ImageRecord) -> tuple[ImageSummary, list[Problem]]:
    """Decode one record's files and report its facts and problems."""
    s = ImageSummary(
        record.name,
        str(record.image),
        record.subject,
        record.modality,
        pixel_size_um=record.pixel_size,
        pixel_size_from=record.pixel_size_from,
        labels=sorted(record.labels),
    )
    problems = []
    try:
        info = images.info(record.image)
        s.width, s.height, s.dtype, s.channels = info.width, info.height, info.dtype, info.channels
        label_map = read_labels(record)
        if label_map is not None:
            check_mask_shape(record, label_map, (info.height, info.width))
            s.label_fractions = {
                k: round(float((label_map == v).mean()), 4) for k, v in (("myelin", 1), ("axon", 2))
            }
            if label_map.max() == 0:
                problems.append(
                    Problem(
                        next(iter(record.labels.values())),
                        "mask is empty",
                        "check that the right mask is paired with this image",
                    )
                )
    except DataError as err:
        problems.append(Problem(err.path, err.problem, err.fix))
    return s, problems


def inspect(root: Path, modality: str | None = None, progress: bool = True) -> dict:
    """Summarise a dataset as a JSON-ready dict."""
    index = formats.scan(root, modality)
    problems = list(index.problems)
    summaries = []
    for record in tqdm(index.records, desc="inspecting", unit="img", disable=not progress):
        summary, found = summarise(record)
        summaries.append(summary)
        problems += found
    if not index.records:
        problems.append(
            Problem(
                root,
                "no images found",
                "expected BIDS (sub-*/micr/*_SEM.png), AxonDeepSeg folders "
                "(image.png + pixel_size_in_micrometer.txt) or nnU-Net raw",
            )
        )
    return {
        "root": str(root),
        "layout": index.layout,
        "n_images": len(summaries),
        "n_labelled": sum(bool(s.labels) for s in summaries),
        "images": [asdict(s) for s in summaries],
        "problems": [{"path": str(p.path), "problem": p.problem, "fix": p.fix} for p in problems],
    }


def format_table(report: dict) -> str:
    """Human-readable report."""
    lines = [
        f"{report['root']}  [{report['layout']}]  {report['n_images']} images, "
        f"{report['n_labelled']} labelled",
        "",
    ]
    header = f"{'name':38} {'mod':4} {'size':>11} {'dtype':7} {'µm/px':>8}  labels  source of px"
    lines += [header, "-" * len(header)]
    for s in report["images"]:
        size = f"{s['width']}x{s['height']}" if s["width"] else "?"
        ps = f"{s['pixel_size_um']:.5g}" if s["pixel_size_um"] else "MISSING"
        labels = "+".join(k[0] if k != "axonmyelin" else "am" for k in s["labels"]) or "-"
        lines.append(
            f"{s['name'][:38]:38} {s['modality'] or '-':4} {size:>11} "
            f"{s['dtype'] or '?':7} {ps:>8}  {labels:6}  {s['pixel_size_from']}"
        )
    lines.append("")
    if report["problems"]:
        lines.append(f"{len(report['problems'])} problem(s):")
        lines += [
            f"  - {p['path']}: {p['problem']}" + (f"\n    fix: {p['fix']}" if p["fix"] else "")
            for p in report["problems"]
        ]
    else:
        lines.append("no problems found")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m axondeepsynth.inspect", description=__doc__)
    parser.add_argument("path", type=Path, help="dataset root (BIDS, AxonDeepSeg, nnU-Net raw)")
    parser.add_argument("--modality", help="keep only this BIDS suffix (TEM, SEM, BF, ...)")
    parser.add_argument("--json", action="store_true", help="emit JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        report = inspect(args.path, args.modality, progress=not args.json)
    except AxonDeepSynthError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
