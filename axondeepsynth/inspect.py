"""`python -m axondeepsynth.inspect PATH [PATH ...] [--scale S ...] [--target-pixel-size T]
[--json]`: what datasets hold and what is wrong with them.

Reads every image and mask once (never writes), like nnU-Net's dataset integrity check. For each
labelled dataset it also reports the median axon equivalent diameter in µm and in pixels after
the resampling a run would apply (`--scale` per dataset, or `--target-pixel-size`), so that both
domains can be brought to comparable structure sizes before translation.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from axondeepsynth.data import images, layouts
from axondeepsynth.data.labels import axon_diameters, implausible
from axondeepsynth.data.records import ImageRecord, Problem, check_mask_shape, decode_labels
from axondeepsynth.data.resample import scale_factor
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
    masks_read_as: dict[str, str] = field(default_factory=dict)  # e.g. {"axon": "0/255"}
    label_fractions: dict[str, float] = field(default_factory=dict)
    axon_diameters_px: list[float] = field(default_factory=list)  # as stored


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
        label_map, s.masks_read_as = decode_labels(record)
        if label_map is not None:
            check_mask_shape(record, label_map, (info.height, info.width))
            s.label_fractions = {
                k: round(float((label_map == v).mean()), 4) for k, v in (("myelin", 1), ("axon", 2))
            }
            s.axon_diameters_px = [round(float(d), 2) for d in axon_diameters(label_map)]
            if label_map.max() == 0:
                problems.append(
                    Problem(
                        next(iter(record.labels.values())),
                        "mask is empty",
                        "check that the right mask is paired with this image",
                    )
                )
            problems += [
                Problem(next(iter(record.labels.values())), what, "check the masks in a viewer")
                for what in implausible(label_map)
            ]
    except DataError as err:
        problems.append(Problem(err.path, err.problem, err.fix))
    return s, problems


def axon_sizes(
    summaries: list[dict], scale: float | None = None, target_pixel_size: float | None = None
) -> dict | None:
    """Median axon equivalent diameter of a dataset's labelled images: in µm, in pixels as
    stored, and in pixels after the resampling a run applies (None without labelled axons)."""
    um, px, working = [], [], []
    for s in summaries:
        ps = s["pixel_size_um"]
        for d in s["axon_diameters_px"]:
            px.append(d)
            if ps:
                um.append(d * ps)
                working.append(d * scale_factor(ps, target_pixel_size, scale))
    if not px:
        return None
    med = lambda values: round(float(np.median(values)), 3) if values else None  # noqa: E731
    return {
        "n_axons": len(px),
        "median_um": med(um),
        "median_px_stored": med(px),
        "median_px_resampled": med(working),
        "scale": scale,
        "target_pixel_size": target_pixel_size,
    }


def inspect(
    root: Path,
    modality: str | None = None,
    progress: bool = True,
    scale: float | None = None,
    target_pixel_size: float | None = None,
) -> dict:
    """Summarise a dataset as a JSON-ready dict."""
    index = layouts.scan(root, modality)
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
    images_ = [asdict(s) for s in summaries]
    return {
        "root": str(root),
        "layout": index.layout,
        "n_images": len(summaries),
        "n_labelled": sum(bool(s.labels) for s in summaries),
        "axon_diameter": axon_sizes(images_, scale, target_pixel_size),
        "images": images_,
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
    sizes = report.get("axon_diameter")
    if sizes:
        how = (
            f"scale {sizes['scale']}"
            if sizes["scale"] is not None
            else f"at {sizes['target_pixel_size']} µm/px"
            if sizes["target_pixel_size"]
            else "no resampling"
        )
        um = f"{sizes['median_um']:.3g} µm, " if sizes["median_um"] is not None else ""
        after = sizes["median_px_resampled"]
        lines += [
            f"median axon diameter ({sizes['n_axons']} axons): {um}"
            f"{sizes['median_px_stored']:.3g} px as stored, "
            + (f"{after:.3g} px after resampling ({how})" if after is not None else ""),
            "",
        ]
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
    parser.add_argument(
        "paths", type=Path, nargs="+", help="dataset roots (BIDS, AxonDeepSeg, nnU-Net raw)"
    )
    parser.add_argument("--modality", help="keep only this BIDS suffix (TEM, SEM, BF, ...)")
    parser.add_argument(
        "--scale", type=float, nargs="+", help="resize factor per path (as data.*.sets[i].scale)"
    )
    parser.add_argument(
        "--target-pixel-size",
        type=float,
        help="µm/px the run resamples to (data.target_pixel_size)",
    )
    parser.add_argument("--json", action="store_true", help="emit JSON instead of a table")
    args = parser.parse_args(argv)
    scales = args.scale or [None] * len(args.paths)
    if len(scales) != len(args.paths):
        print(
            f"error: --scale has {len(scales)} values for {len(args.paths)} paths\n"
            "  fix: give one scale per path, in the same order",
            file=sys.stderr,
        )
        return 2
    try:
        reports = [
            inspect(p, args.modality, not args.json, s, args.target_pixel_size)
            for p, s in zip(args.paths, scales, strict=True)
        ]
    except AxonDeepSynthError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"datasets": reports}, indent=2))
    else:
        print("\n\n".join(format_table(r) for r in reports))
    return 1 if any(r["problems"] for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
