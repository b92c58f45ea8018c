"""`python -m axondeepsynth.report RUN_DIR [RUN_DIR ...] [--out DIR] [--json]`: the paper's table.

Gathers every `results.json` under the run (or multirun sweep) directories and reports, per
target domain and strategy, axon and myelin Dice as mean ± std over folds (sample std). Writes
`table.md`, `table.csv`, `summary.json` and `dice.png`; never overwrites an earlier report.
Imports neither torch nor Lightning, so it starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from axondeepsynth.errors import AxonDeepSynthError, DataError
from axondeepsynth.findings import (
    aggregate,
    chart,
    collect,
    csv_table,
    markdown,
    notes,
    overlay_montage,
)
from axondeepsynth.io import write_bytes, write_text


def _free_dir(out: Path) -> Path:
    """`out` if absent or empty, else the first absent-or-empty `out-2`, `out-3`, ..."""
    for i in range(1, 10_000):
        candidate = out if i == 1 else out.with_name(f"{out.name}-{i}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            if candidate.is_dir() and not any(candidate.iterdir()):
                return candidate
    raise DataError(out, "no free report directory", "remove old reports")


def write_report(rows: list[dict], out: Path, records: list[dict] | None = None) -> Path:
    """Write table.md, table.csv, summary.json, dice.png and (from the runs' `records`, where
    they saved overlays) overlays.png; returns the directory used.

    That is `out`, or `out-2`, `out-3`, ... when `out` already holds files.
    """
    out = _free_dir(Path(out))
    write_text(out / "table.md", "\n".join([markdown(rows), *notes(records or [], rows)]))
    write_text(out / "table.csv", csv_table(rows))
    write_text(out / "summary.json", json.dumps({"rows": rows}, indent=2) + "\n")
    if rows:
        write_bytes(out / "dice.png", chart(rows))
    montage = overlay_montage(records or [])
    if montage is not None:
        write_bytes(out / "overlays.png", montage)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m axondeepsynth.report", description=__doc__)
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, help="report directory (default: RUN_DIR/report)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    try:
        records = collect(args.run_dirs)
        rows = aggregate(records)
        found = notes(records, rows)
        if not rows and not found:
            raise DataError(
                args.run_dirs[0], "results.json files hold no strategies", "run evaluate first"
            )
        wanted = args.out or args.run_dirs[0] / "report"
        out = write_report(rows, wanted, records)
    except AxonDeepSynthError as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except PermissionError as err:
        print(
            f"error: {err.filename}: cannot write the report there ({err.strerror}) "
            "(fix: pass --out /a/writable/folder)",
            file=sys.stderr,
        )
        return 2
    if out != wanted:
        print(f"note: {wanted} is not empty; wrote the report to {out}", file=sys.stderr)
    else:
        print(f"report written to {out}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:  # without U's labels: no Dice, but the recommendation and the images to check
        print("\n".join([markdown(rows), *found]).rstrip("\n"))
    return 0


def _one_line(err: AxonDeepSynthError) -> str:
    if isinstance(err, DataError):
        return f"{err.path}: {err.problem}" + (f" (fix: {err.fix})" if err.fix else "")
    return str(err).replace("\n", " ")


if __name__ == "__main__":
    sys.exit(main())
