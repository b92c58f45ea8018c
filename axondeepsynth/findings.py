"""What runs found: their `results.json` files gathered and aggregated per target domain and
strategy (Dice as mean ± std over folds, sample std), the recommendation made without U's labels,
the notes under the table, and the table as Markdown, CSV and W&B rows, and as a chart.

The evaluate stage and the `report` CLI both use it. Imports neither torch nor Lightning.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import sys
from pathlib import Path

from axondeepsynth.errors import DataError
from axondeepsynth.strategies import STRATEGIES
from axondeepsynth.translator_check import summary as check_summary
from axondeepsynth.translator_check import trusted

STRATEGY_ORDER = tuple(STRATEGIES)
CLASSES = ("axon", "myelin")
DEFAULT_BACKEND = "lightning"  # the proxy's; rows of another backend are labelled with it
COLUMNS = [
    "target",
    "source",
    "strategy",
    "config_hash",
    "backend",
    "seed",
    "n_folds",
    "n_images",
    "axon_mean",
    "axon_std",
    "myelin_mean",
    "myelin_std",
]
# morphometrics of the pseudo labels against U's own labels, mean over folds (morphometrics.py)
MORPHOMETRICS = [
    "gratio_mean",
    "gratio_mean_truth",
    "gratio_error",
    "gratio_wasserstein",
    "axon_diam_mean",
    "axon_diam_mean_truth",
    "axon_diam_error",
    "axon_diam_wasserstein",
]
# axon detection by AxonDeepSeg's rule (detection.py), mean and std over folds
DETECTION = ["sensitivity", "precision", "diffusion", "count_ratio", "unmyelinated"]
DETECTION_COLUMNS = [f"{name}_{stat}" for name in DETECTION for stat in ("mean", "std")]
_RERUN = "re-run the evaluate stage of that job, or delete the file"


# --- loading -------------------------------------------------------------------------------


def collect(run_dirs: list[Path]) -> list[dict]:
    """Load every `**/results.json` under `run_dirs`; each record gains its `path`."""
    records = []
    for run_dir in map(Path, run_dirs):
        if not run_dir.is_dir():
            raise DataError(run_dir, "not a directory", "pass a run or multirun directory")
        paths = sorted(run_dir.rglob("results.json"))
        if not paths:
            raise DataError(
                run_dir,
                "no results.json found under this directory",
                "pass a run or multirun directory whose evaluate stage has finished",
            )
        records += [_load(path) for path in paths]
    return records


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(path, f"unreadable or corrupt JSON ({err})", _RERUN) from err
    if not isinstance(data, dict) or not isinstance(data.get("strategies"), dict):
        raise DataError(path, "no 'strategies' object: not an evaluate results file", _RERUN)
    for strategy, body in data["strategies"].items():
        folds = body.get("folds") if isinstance(body, dict) else None
        if not isinstance(folds, dict):
            raise DataError(path, f"strategy '{strategy}' has no 'folds' object", _RERUN)
        for fold, scores in folds.items():
            if isinstance(scores, dict) and scores.get("mean") is None:
                continue  # U had no labels in that run: pseudo labels only, no Dice
            mean = scores.get("mean") if isinstance(scores, dict) else None
            if not isinstance(mean, dict) or not all(_is_number(mean.get(c)) for c in CLASSES):
                raise DataError(
                    path, f"strategy '{strategy}' fold {fold} lacks mean axon/myelin Dice", _RERUN
                )
    return {**data, "path": str(path)}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --- aggregation ---------------------------------------------------------------------------


def aggregate(records: list[dict]) -> list[dict]:
    """One row per (target, source, strategy, config_hash, backend): Dice mean ± std over
    unique folds.

    A fold seen in several files of the same config is counted once (a warning goes to stderr
    when the copies disagree). `n_images` is the number of test images per fold (their mean
    when folds differ); `translation` averages the files' SSIM/PSNR scores.
    """
    groups: dict[tuple, dict] = {}
    for record in records:
        for strategy, body in record["strategies"].items():
            key = (
                str(record.get("target")),
                str(record.get("source")),
                strategy,
                record.get("config_hash"),
                record.get("backend", DEFAULT_BACKEND),  # results before the nnU-Net backend
            )
            group = groups.setdefault(
                key,
                {
                    "folds": {},
                    "files": {},
                    "seed": record.get("seed"),
                    "recipe_hash": record.get("recipe_hash"),
                },
            )
            group["files"][record["path"]] = record.get("translation") or {}
            for fold, scores in body["folds"].items():
                if scores.get("mean") is not None:
                    _add_fold(group["folds"], str(fold), scores, key, record["path"])
            ensemble = body.get("ensemble") or {}
            # the folds' proxies averaged (segmenter.predict.ensemble)
            if ensemble.get("mean") is not None:
                group["ensemble"] = {c: float(ensemble["mean"][c]) for c in CLASSES}
    rows = [_row(key, group) for key, group in groups.items() if group["folds"]]  # scored ones
    return sorted(rows, key=_sort_key)


def _add_fold(folds: dict, fold: str, scores: dict, key: tuple, path: str) -> None:
    entry = {c: float(scores["mean"][c]) for c in CLASSES}
    per_image = scores.get("per_image")
    entry["n_images"] = len(per_image) if isinstance(per_image, dict) else None
    entry["morphometrics"] = scores.get("morphometrics") or {}
    entry["detection"] = scores.get("detection") or {}
    seen = folds.get(fold)
    if seen is None:
        folds[fold] = {**entry, "path": path}
    elif not all(math.isclose(seen[c], entry[c], rel_tol=1e-9, abs_tol=1e-12) for c in CLASSES):
        _, _, strategy, config_hash, _ = key
        print(
            f"warning: config {config_hash} strategy '{strategy}' fold {fold} differs between "
            f"{seen['path']} (kept) and {path} (ignored)",
            file=sys.stderr,
        )


def _row(key: tuple, group: dict) -> dict:
    target, source, strategy, config_hash, backend = key
    folds = dict(sorted(group["folds"].items(), key=lambda kv: _fold_order(kv[0])))
    row = {
        "target": target,
        "source": source,
        "strategy": strategy,
        "config_hash": config_hash,
        "backend": backend,
        "seed": group["seed"],  # in the config hash: one per row
        "recipe_hash": group["recipe_hash"],  # shared by rows that differ by their seed alone
        "n_folds": len(folds),
        "n_images": _images_per_fold(folds.values()),
    }
    for c in CLASSES:
        values = [f[c] for f in folds.values()]
        row[f"{c}_mean"] = statistics.fmean(values)
        row[f"{c}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    for name in MORPHOMETRICS:
        values = [f["morphometrics"].get(name) for f in folds.values()]
        values = [float(v) for v in values if _is_number(v)]
        row[name] = statistics.fmean(values) if values else None
    for name in DETECTION:
        values = [f["detection"].get(name) for f in folds.values()]
        values = [float(v) for v in values if _is_number(v)]
        row[f"{name}_mean"] = statistics.fmean(values) if values else None
        row[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    row["ensemble"] = group.get("ensemble")  # Dice of the folds' proxies averaged, or None
    row["translation"] = _translation(group["files"].values())
    row["folds"] = folds
    row["files"] = sorted(group["files"])
    return row


def _fold_order(fold: str) -> tuple:
    return (0, int(fold), "") if fold.isdigit() else (1, 0, fold)


def _images_per_fold(folds) -> int | float | None:
    counts = [f["n_images"] for f in folds if f["n_images"] is not None]
    if not counts:
        return None
    return counts[0] if len(set(counts)) == 1 else round(statistics.fmean(counts), 1)


def _translation(per_file) -> dict[str, float]:
    """Mean over files of each SSIM/PSNR score (their `_std` companions are left out)."""
    values: dict[str, list[float]] = {}
    for scores in per_file:
        for name, value in scores.items():
            metric = name.rsplit("/", 1)[-1]
            if metric in ("ssim", "psnr") and _is_number(value):
                values.setdefault(name, []).append(float(value))
    return {name: statistics.fmean(v) for name, v in sorted(values.items())}


def _strategy_rank(strategy: str) -> tuple:
    if strategy in STRATEGY_ORDER:
        return (STRATEGY_ORDER.index(strategy), "")
    return (len(STRATEGY_ORDER), strategy)


def _sort_key(row: dict) -> tuple:
    return (row["source"], row["target"], _strategy_rank(row["strategy"]), row["config_hash"] or "")


# --- tables --------------------------------------------------------------------------------


def _pair(row: dict) -> tuple[str, str]:
    return row["source"], row["target"]


def _ambiguous(rows: list[dict]) -> set[tuple]:
    """(source, target, strategy, backend) that several config hashes report: their rows show
    the hash."""
    hashes: dict[tuple, set] = {}
    for row in rows:
        key = (*_pair(row), row["strategy"], row["backend"])
        hashes.setdefault(key, set()).add(row["config_hash"])
    return {key for key, found in hashes.items() if len(found) > 1}


def _series(rows: list[dict]) -> dict[tuple, str]:
    """Map (strategy, backend, hash or None) -> display label, in paper order; the proxy's
    backend is named when it is not the default."""
    ambiguous = _ambiguous(rows)
    keys = {_series_key(row, ambiguous) for row in rows}
    seeds = {_series_key(row, ambiguous): row["seed"] for row in rows}
    ordered = sorted(keys, key=lambda k: (_strategy_rank(k[0]), k[1], k[2] or ""))
    labels = {}
    for key in ordered:
        strategy, backend, config_hash = key
        label = strategy if backend == DEFAULT_BACKEND else f"{strategy} ({backend})"
        if config_hash:  # several configs: name each by its seed (where known) and hash
            seed = "" if seeds[key] is None else f"seed {seeds[key]}, "
            label += f" [{seed}{config_hash}]"
        labels[key] = label
    return labels


def _series_key(row: dict, ambiguous: set[tuple]) -> tuple[str, str, str | None]:
    shown = (*_pair(row), row["strategy"], row["backend"]) in ambiguous
    return row["strategy"], row["backend"], (row["config_hash"] or "?") if shown else None


def _pairs(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted({_pair(row) for row in rows})


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def markdown(rows: list[dict]) -> str:
    """The paper's table: a row per strategy, Dice mean ± std and fold count per target."""
    if not rows:
        return "_no results_\n"
    ambiguous, series, pairs = _ambiguous(rows), _series(rows), _pairs(rows)
    cells = {(_series_key(r, ambiguous), _pair(r)): r for r in rows}
    header = ["strategy"]
    for source, target in pairs:
        header += [f"{source} → {target} {c} Dice" for c in CLASSES] + ["n folds"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|",
    ]
    for key, label in series.items():
        line = [label]
        for pair in pairs:
            row = cells.get((key, pair))
            if row is None:
                line += ["–"] * (len(CLASSES) + 1)
            else:
                line += [_fmt(row[f"{c}_mean"], row[f"{c}_std"]) for c in CLASSES]
                line.append(str(row["n_folds"]))
        lines.append("| " + " | ".join(line) + " |")
    morphometrics = _ensemble_lines(series, pairs, cells)
    morphometrics += _morphometrics_lines(rows, series, pairs, cells)
    morphometrics += _detection_lines(series, pairs, cells)
    return "\n".join(lines + _translation_lines(rows, ambiguous) + morphometrics) + "\n"


def _morphometrics_lines(rows: list[dict], series: dict, pairs: list, cells: dict) -> list[str]:
    """Per target, a row per strategy: mean g-ratio and axon diameter of its pseudo labels
    against U's labels, the error of the means and the distance between the distributions."""
    if not any(row.get("gratio_mean_truth") is not None for row in rows):
        return []
    lines = [
        "",
        "Morphometrics against U's labels (mean over folds; W1: distance between the "
        "per-axon distributions):",
    ]
    for pair in pairs:
        lines += [
            "",
            f"| {pair[0]} → {pair[1]} | g-ratio (truth) | abs error | W1 "
            "| axon diameter µm (truth) | abs error | W1 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for key, label in series.items():
            row = cells.get((key, pair))
            if row is None or row.get("gratio_mean_truth") is None:
                continue
            cell = [label]
            for name in ("gratio", "axon_diam"):
                mean, truth = row[f"{name}_mean"], row[f"{name}_mean_truth"]
                cell.append(f"{_num(mean)} ({_num(truth)})")
                cell += [_num(row[f"{name}_error"]), _num(row[f"{name}_wasserstein"])]
            lines.append("| " + " | ".join(cell) + " |")
    return lines


def _ensemble_lines(series: dict, pairs: list, cells: dict) -> list[str]:
    """Per target, each strategy's Dice with its folds' proxies averaged: the pseudo labels
    and the model a run hands on."""
    lines = []
    for pair in pairs:
        found = [(label, cells.get((key, pair))) for key, label in series.items()]
        found = [(label, row["ensemble"]) for label, row in found if row and row["ensemble"]]
        if found:
            scores = "; ".join(
                f"{label} {' / '.join(f'{e[c]:.3f}' for c in CLASSES)}" for label, e in found
            )
            lines.append(f"{pair[0]} → {pair[1]}, {' / '.join(CLASSES)}: {scores}")
    if not lines:
        return []
    return ["", "Folds' proxies averaged (the pseudo labels and model a run hands on), Dice:"] + [
        f"- {line}" for line in lines
    ]


def _detection_lines(series: dict, pairs: list, cells: dict) -> list[str]:
    """Per target, a row per strategy: axon detection by AxonDeepSeg's rule against U's labels
    and the whole axons its pseudo labels give no myelin."""
    scored = {key: row for key, row in cells.items() if row.get("sensitivity_mean") is not None}
    if not scored:
        return []
    lines = ["", "Axons one by one against U's labels (AxonDeepSeg's rule; mean ± std over folds):"]
    for pair in pairs:
        lines += [
            "",
            f"| {pair[0]} → {pair[1]} | sensitivity | precision | diffusion (splits per claimed "
            "axon) | axons / true | axons without myelin |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for key, label in series.items():
            row = scored.get((key, pair))
            if row is not None:
                cell = [label] + [
                    "–" if row[f"{n}_mean"] is None else _fmt(row[f"{n}_mean"], row[f"{n}_std"])
                    for n in DETECTION
                ]
                lines.append("| " + " | ".join(cell) + " |")
    return lines


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _translation_lines(rows: list[dict], ambiguous: set[tuple]) -> list[str]:
    """One line per (source, target[, hash]) with the translator's mean SSIM/PSNR."""
    seen, lines = set(), []
    for row in rows:
        shown = any(key[:2] == _pair(row) for key in ambiguous)
        key = (*_pair(row), row["config_hash"] if shown else None)
        if key in seen or not row["translation"]:
            continue
        seen.add(key)
        scores = ", ".join(_score(name, v) for name, v in row["translation"].items())
        label = f"{key[0]} → {key[1]}" + (f" [{key[2]}]" if shown else "")
        lines.append(f"- {label}: {scores}")
    return ["", "Translation quality (mean over runs):", *lines] if lines else []


def _score(name: str, value: float) -> str:
    parts = name.split("/")
    metric = parts[-1]
    where = parts[-2] if len(parts) > 1 else ""
    text = f"{value:.2f} dB" if metric == "psnr" else f"{value:.3f}"
    return f"{where} {metric.upper()} {text}".strip()


def table_for_logging(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Columns and data of the flat table (as in table.csv), e.g. for `wandb.Table`."""
    extra = sorted({name for row in rows for name in row["translation"]})
    named = COLUMNS + MORPHOMETRICS + DETECTION_COLUMNS
    data = [
        [row.get(c) for c in named] + [row["translation"].get(n) for n in extra] for row in rows
    ]
    columns = named + extra
    return columns, data


def csv_table(rows: list[dict]) -> str:
    columns, data = table_for_logging(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in line] for line in data])
    return buffer.getvalue()


# --- chart ---------------------------------------------------------------------------------

_COLOURS = {name: strategy.color for name, strategy in STRATEGIES.items()}
_ERR = {"ecolor": "#222222", "capsize": 3, "elinewidth": 1}
_SPARE = ("#8172B3", "#937860", "#DA8BC3", "#CCB974", "#64B5CD", "#4C4C4C")


def chart(rows: list[dict]) -> bytes:
    """Grouped bars (x: target domain, a bar per strategy, a panel per class's Dice and, where
    measured, per axon detection score) as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ambiguous, series, pairs = _ambiguous(rows), _series(rows), _pairs(rows)
    cells = {(_series_key(r, ambiguous), _pair(r)): r for r in rows}
    one_source = len({s for s, _ in pairs}) == 1
    ticks = [t if one_source else f"{s} → {t}" for s, t in pairs]
    width = 0.8 / max(len(series), 3)  # one or two bars stay bar-shaped
    panel = max(3.5, 0.8 + len(pairs) * (0.45 * len(series) + 0.5))
    panels = {c: f"{c} Dice" for c in CLASSES} | {
        n: f"axon detection {n}"
        for n in ("sensitivity", "precision")
        if any(r.get(f"{n}_mean") is not None for r in rows)
    }
    fig = Figure(figsize=(len(panels) * panel + 0.8, 4.6), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    spare = iter(_SPARE * 4)
    plain = {k: k[1] == DEFAULT_BACKEND and k[2] is None for k in series}
    colours = {k: _COLOURS.get(k[0]) if plain[k] else None for k in series}
    colours = {k: c or next(spare) for k, c in colours.items()}
    for ax, (cls, title) in zip(axes, panels.items(), strict=True):
        for i, (key, label) in enumerate(series.items()):
            xs, ys, es = [], [], []
            for x, pair in enumerate(pairs):
                row = cells.get((key, pair))
                if row is not None and row.get(f"{cls}_mean") is not None:
                    xs.append(x + width * (i + 0.5 - len(series) / 2))
                    ys.append(row[f"{cls}_mean"])
                    es.append(row[f"{cls}_std"])
            ax.bar(xs, ys, width * 0.92, yerr=es, label=label, color=colours[key], error_kw=_ERR)
            for x, y, e in zip(xs, ys, es, strict=True):
                ax.text(x, y + e + 0.015, f"{y:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_title(title)
        ax.set_xticks(range(len(pairs)), ticks)
        ax.set_xlabel(f"target domain (source: {pairs[0][0]})" if one_source else "source → target")
        ax.set_xlim(-0.6, len(pairs) - 0.4)
        ax.set_ylim(0, 1.08)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0].set_ylabel("mean ± std over folds")
    handles, labels = axes[0].get_legend_handles_labels()
    ncol = min(len(labels), 6)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
    folds = sorted({r["n_folds"] for r in rows})
    n = f"{folds[0]}" if len(folds) == 1 else f"{folds[0]}–{folds[-1]}"
    n += " fold" if n == "1" else " folds"
    fig.suptitle(f"Pseudo labels by strategy and target domain ({n}, error bar = std)")
    fig.tight_layout(rect=(0, 0.02 + 0.06 * math.ceil(len(labels) / ncol), 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# --- overlays ------------------------------------------------------------------------------


def extremes(records: list[dict]) -> dict[str, dict[str, tuple[float, Path]]]:
    """Per strategy, the worst and the best U image by axon Dice over every fold and file, with
    the overlay picture `evaluate` saved of it (`overlays/<strategy>_fold<k>_<worst|best>_*`)."""
    found: dict[str, dict[str, tuple[float, Path]]] = {}
    for record in records:
        run_dir = Path(record["path"]).parent
        for strategy, body in record["strategies"].items():
            for fold, scores in body["folds"].items():
                for key, dice in (scores.get("per_image") or {}).items():
                    for tag, better in (("worst", float.__lt__), ("best", float.__gt__)):
                        seen = found.setdefault(strategy, {}).get(tag)
                        name = f"{strategy}_fold{fold}_{tag}_{key.replace('/', '_')}.png"
                        picture = run_dir / "overlays" / name
                        axon = float(dice["axon"])
                        if picture.is_file() and (seen is None or better(axon, seen[0])):
                            found[strategy][tag] = (axon, picture)
    return found


def to_check(records: list[dict], n: int = 3) -> str:
    """Per strategy, the `n` least confident pseudo labels over every fold and file (the images
    a person should look at first), with their axon Dice where U's labels exist, as markdown."""
    lines = []
    for strategy in sorted(
        {s for r in records for s in r["strategies"]}, key=lambda s: _strategy_rank(s)
    ):
        seen = []
        for record in records:
            for fold, scores in record["strategies"].get(strategy, {}).get("folds", {}).items():
                dice = scores.get("per_image") or {}
                for key, conf in (scores.get("confidence") or {}).items():
                    axon = dice.get(key, {}).get("axon")
                    seen.append((float(conf), key, fold, axon))
        if seen:
            worst = ", ".join(
                f"{key} (fold {fold}: {conf:.3f}"
                + ("" if axon is None else f", axon Dice {float(axon):.3f}")
                + ")"
                for conf, key, fold, axon in sorted(seen)[:n]
            )
            lines.append(f"- {strategy}: {worst}")
    if not lines:
        return ""
    return (
        "Least confident pseudo labels, to check first (mean confidence over fibre pixels):\n"
        + "\n".join(lines)
        + "\n"
    )


def _candidate_scores(records: list[dict]) -> dict[tuple, dict[str, dict[str, list[float]]]]:
    """Per (source, target) and strategy scored on all of U: agreement, confidence, axon Dice."""
    scores: dict[tuple, dict[str, dict[str, list[float]]]] = {}
    for record in records:
        pair = (str(record.get("source")), str(record.get("target")))
        for strategy, body in record["strategies"].items():
            known = STRATEGIES.get(strategy)
            if known is not None and known.held_out:  # the oracle, self_training: part of U only
                continue
            if not trusted(strategy, record):  # made through a translator that failed its check
                continue
            mine = scores.setdefault(pair, {}).setdefault(
                strategy, {"agreement": [], "confidence": [], "dice": []}
            )
            for fold in body["folds"].values():
                mine["confidence"] += [float(v) for v in (fold.get("confidence") or {}).values()]
                if "agreement" in fold:
                    mine["agreement"].append(float(fold["agreement"]))
                if fold.get("mean"):
                    mine["dice"].append(float(fold["mean"]["axon"]))
    return scores


def _ranking(by_strategy: dict[str, dict[str, list[float]]]) -> tuple[str, dict[str, float]]:
    """What ranks the strategies (agreement where every one has it, else confidence) and
    each one's mean of it, best first; U's labels are never read."""
    by = "agreement" if all(v["agreement"] for v in by_strategy.values()) else "confidence"
    means = {s: statistics.fmean(v[by]) for s, v in by_strategy.items() if v[by]}
    return by, dict(sorted(means.items(), key=lambda kv: kv[1], reverse=True))


def recommended(records: list[dict]) -> str | None:
    """The strategy `recommend` names for the first (source, target) of `records`."""
    for by_strategy in _candidate_scores(records).values():
        _, means = _ranking(by_strategy)
        if means:
            return next(iter(means))
    return None


def recommend(records: list[dict]) -> str:
    """One line per (source, target): the strategy the others back up most (the mean Dice of
    its pseudo labels against theirs, `agreement` in results.json), or, where that was not
    measured (two strategies, older results), the most confident one (mean per-image
    confidence); chosen without U's labels. Where U's labels exist, a second clause says
    whether it also has the best axon Dice."""
    lines = []
    for (source, target), by_strategy in _candidate_scores(records).items():
        by, means = _ranking(by_strategy)
        if not means:
            continue
        ranked = list(means)
        others = "".join(f"; {s} {means[s]:.3f}" for s in ranked[1:])
        why = (
            "the other strategies' pseudo labels agree with it most (mean Dice "
            if by == "agreement"
            else "its pseudo labels the most confident (mean "
        )
        line = f"- {source} → {target}: recommended **{ranked[0]}**, {why}{means[ranked[0]]:.3f}"
        line += others + ")"
        dice = {s: statistics.fmean(v["dice"]) for s, v in by_strategy.items() if v["dice"]}
        if dice:
            best = max(dice, key=dice.get)
            line += (
                "; the best by axon Dice too"
                if best == ranked[0]
                else f"; the best by axon Dice is {best}"
            )
        lines.append(line)
    return ("Recommendation, made without U's labels:\n" + "\n".join(lines) + "\n") if lines else ""


def overlay_montage(records: list[dict], height: int = 260) -> bytes | None:
    """One row per strategy: its worst and best U image (image | truth | pseudo label), as PNG
    bytes; None when no overlay pictures are found."""
    import cv2
    import numpy as np

    rows = []
    for strategy, tags in sorted(extremes(records).items(), key=lambda kv: _strategy_rank(kv[0])):
        cells = []
        for tag in ("worst", "best"):
            if tag not in tags:
                continue
            axon, picture = tags[tag]
            strip = cv2.imread(str(picture))
            strip = cv2.resize(strip, (round(strip.shape[1] * height / strip.shape[0]), height))
            band = np.full((28, strip.shape[1], 3), 255, np.uint8)
            text = f"{strategy} {tag}: {picture.stem.split('_', 3)[-1]}  axon Dice {axon:.3f}"
            cv2.putText(band, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
            cells.append(np.concatenate([band, strip]))
        if cells:
            rows.append(
                np.concatenate(
                    [np.pad(c, ((0, 0), (0, 8), (0, 0)), constant_values=255) for c in cells], 1
                )
            )
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return cv2.imencode(".png", np.concatenate(rows))[1].tobytes()


def self_training(records: list[dict]) -> str:
    """Whether each self-trained model beats the pseudo labels it learned from by axon Dice on
    the same held-out images (both classes shown, mean over folds)."""
    lines = []
    for record in records:
        body = record["strategies"].get("self_training")
        folds = [f for f in (body or {}).get("folds", {}).values() if f.get("teacher")]
        if not folds:
            continue
        own = {c: statistics.fmean(f["mean"][c] for f in folds) for c in CLASSES}
        taught = {c: statistics.fmean(f["teacher"][c] for f in folds) for c in CLASSES}
        verdict = "beats" if own["axon"] > taught["axon"] else "does not beat"
        lines.append(
            f"- {record.get('source')} → {record.get('target')}: self_training {verdict} its "
            f"teacher {body['teacher']} (axon {own['axon']:.3f} vs {taught['axon']:.3f}, myelin "
            f"{own['myelin']:.3f} vs {taught['myelin']:.3f}; {len(folds)} folds, held-out images)"
        )
    return (
        ("Self-training against its teacher's pseudo labels:\n" + "\n".join(lines) + "\n")
        if lines
        else ""
    )


def translator_checks(records: list[dict]) -> str:
    """Whether each run's translator kept L's content (`translator_check.py`)."""
    lines = [line for line in map(check_summary, records) if line]
    return (
        ("Translator check, made with L's labels only:\n" + "\n".join(lines) + "\n")
        if lines
        else ""
    )


def seed_spread(rows: list[dict]) -> str:
    """For each strategy run with several seeds and nothing else changed (one recipe hash), its
    Dice over the seeds: one run is an anecdote, the spread says what to expect of the next."""
    by_recipe: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("recipe_hash") and row.get("seed") is not None:
            key = (row["target"], row["source"], row["strategy"], row["recipe_hash"])
            by_recipe.setdefault(key, []).append(row)
    lines = []
    for (target, source, strategy, _), group in by_recipe.items():
        if len({r["seed"] for r in group}) < 2:
            continue
        group = sorted(group, key=lambda r: r["seed"])
        averaged = all(r["ensemble"] for r in group)  # what each run hands on, where all have it
        cells = []
        for c in CLASSES:
            values = [r["ensemble"][c] if averaged else r[f"{c}_mean"] for r in group]
            cells.append(
                f"{c} {statistics.fmean(values):.3f} (range {min(values):.3f}-{max(values):.3f})"
            )
        seeds = ", ".join(str(r["seed"]) for r in group)
        what = "folds' proxies averaged" if averaged else "mean over folds"
        lines.append(
            f"- {source} → {target}, {strategy} ({what}): {'; '.join(cells)} over seeds {seeds}"
        )
    return ("Spread over seeds:\n" + "\n".join(lines) + "\n") if lines else ""


def notes(records: list[dict], rows: list[dict] | None = None) -> list[str]:
    """The text under the table: the translator check, the spread over seeds (of `rows`, the
    records aggregated, when the caller has them), the recommendation, self-training, the
    images to check."""
    if rows is None:  # records read from files (an in-memory one has no path to name)
        rows = aggregate([r for r in records if "path" in r])
    spread = seed_spread(rows)
    parts = (translator_checks(records), spread, recommend(records), self_training(records))
    return [t for t in (*parts, to_check(records)) if t]
