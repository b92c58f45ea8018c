"""Whether a translator kept the content of L's images, judged with L's labels alone.

A cycle-consistent translator can hide a tile's content in its texture: L -> U then shows
another layout (many small axons become one large ring), L -> U -> L is still right, and a
proxy trained on L's labels over those pictures learns nothing that holds on U. Two scores
catch it, neither reading U's labels:

- **label separation**: how much of an L -> U translation's intensity variance L's own labels
  explain (the correlation ratio over background, myelin and axon), divided by the same on the
  L image. Any per-class intensity mapping keeps it near 1, polarity included; a redrawn layout
  leaves L's labels explaining little, and it falls towards 0. Mean over L's images.
- **proxy gap**: the validation Dice of the proxy trained on L, on held-out L tiles, minus that
  of the proxy trained on L -> U, on held-out translated tiles of the same fold. A good
  translator costs a few hundredths; one that rewrites the layout, a quarter.

A translator fails when either score is past its bound; the strategies that use its
translations (and a self-trained model taught by one) are then left out of the
recommendation and never kept as the run's model. Imports no torch.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

import numpy as np

from axondeepsynth.strategies import STRATEGIES

SEPARATION_MIN = 0.5  # translated / original correlation ratio, mean over L's images
GAP_MAX = 0.15  # L proxy's val Dice minus the L2U proxy's, mean over folds
ADVICE = (
    "train the translator again with the structure term (translator.train.lambda_struct=1), or "
    "with another seed (seed=N), and keep a run whose check passes; until then use direct or "
    "U's own labels"
)


def correlation_ratio(image: np.ndarray, labels: np.ndarray) -> float | None:
    """η²: the share of `image`'s intensity variance that the label classes explain (between-
    class over total variance), in [0, 1]; None where it is undefined (one class, flat image)."""
    x = image.astype(np.float64).ravel()
    y = labels.ravel()
    total = x.var()
    classes = np.unique(y)
    if total <= 0 or len(classes) < 2:
        return None
    mean = x.mean()
    between = sum((y == c).mean() * (x[y == c].mean() - mean) ** 2 for c in classes)
    return float(between / total)


def label_separation(
    triples: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
) -> dict | None:
    """Per L image (key, original, translation, labels), the translation's correlation ratio
    over the original's; their mean. None when no image has one."""
    per_image = {}
    for key, original, translated, labels in triples:
        before = correlation_ratio(original, labels)
        after = correlation_ratio(translated, labels)
        if before and after is not None:
            per_image[key] = round(after / before, 6)
    if not per_image:
        return None
    mean = statistics.fmean(per_image.values())
    return {"mean": round(mean, 6), "min": min(per_image.values()), "per_image": per_image}


def proxy_gap(l_val: dict[int, float], l2u_val: dict[int, float]) -> dict | None:
    """Per fold with both proxies, the L proxy's validation Dice minus the L2U proxy's."""
    folds = sorted(set(l_val) & set(l2u_val))
    if not folds:
        return None
    gaps = {str(k): round(l_val[k] - l2u_val[k], 6) for k in folds}
    return {
        "mean": round(statistics.fmean(gaps.values()), 6),
        "per_fold": gaps,
        "l_val_dice": {str(k): round(l_val[k], 6) for k in folds},
        "l2u_val_dice": {str(k): round(l2u_val[k], 6) for k in folds},
    }


def judge(separation: dict | None, gap: dict | None) -> dict:
    """The check's record for results.json: both scores, their bounds, whether it passed (None
    when neither could be measured) and why not."""
    failures = []
    if separation is not None and separation["mean"] < SEPARATION_MIN:
        failures.append(f"label separation {separation['mean']:.2f} < {SEPARATION_MIN}")
    if gap is not None and gap["mean"] > GAP_MAX:
        failures.append(f"proxy gap {gap['mean']:.2f} > {GAP_MAX}")
    measured = separation is not None or gap is not None
    return {
        "passed": (not failures) if measured else None,
        "failures": failures,
        "label_separation": separation,
        "proxy_gap": gap,
        "bounds": {"label_separation_min": SEPARATION_MIN, "proxy_gap_max": GAP_MAX},
    }


def failed(record: dict) -> bool:
    """Whether a results.json record's translator failed its check."""
    return (record.get("translator_check") or {}).get("passed") is False


def rests_on_translator(strategy: str, record: dict) -> bool:
    """Whether a strategy's pseudo labels come through the run's translations: it segments or
    trains on them, or it learned from a teacher's pseudo labels that did."""
    known = STRATEGIES.get(strategy)
    if known is None:
        return False
    if known.translations:
        return True
    teacher = (record.get("strategies", {}).get(strategy) or {}).get("teacher")
    return known.pseudo and teacher is not None and rests_on_translator(teacher, record)


def trusted(strategy: str, record: dict) -> bool:
    """A strategy the recommendation and the kept model may rest on."""
    return not (failed(record) and rests_on_translator(strategy, record))


def summary(record: dict) -> str:
    """One line on a run's translator check, with what to do when it failed; '' if unmeasured."""
    check = record.get("translator_check") or {}
    if check.get("passed") is None:
        return ""
    scores = []
    if check.get("label_separation"):
        scores.append(f"label separation {check['label_separation']['mean']:.2f}")
    if check.get("proxy_gap"):
        scores.append(f"proxy gap {check['proxy_gap']['mean']:.2f}")
    seed = f" (seed {record['seed']})" if "seed" in record else ""
    pair = f"{record.get('source')} → {record.get('target')}{seed}"
    if check["passed"]:
        aside = check.get("set_aside") or []
        seeds = ", ".join(str(a["seed"]) for a in aside)
        separations = ", ".join(format(a["label_separation"], ".2f") for a in aside)
        restarted = (
            f", after setting aside the translator of seed {seeds} (label separation {separations})"
            if aside
            else ""
        )
        return f"- {pair}: the translator passed its check ({', '.join(scores)}){restarted}"
    left_out = [s for s in record.get("strategies", {}) if not trusted(s, record)]
    return (
        f"- {pair}: **the translator FAILED its check** ({'; '.join(check['failures'])}): its "
        "translations do not show L's content, so pseudo labels made through them "
        f"({', '.join(left_out) or 'none here'}) are not recommended or kept. Fix: {ADVICE}"
    )
