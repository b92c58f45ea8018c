"""The strategies that make pseudo labels for domain U, as one table.

A strategy is the set of proxy models whose softmax it averages on each U image: each model is
trained on a training set and shown one input. Everything else follows from the table: which
training sets and translations a run needs, which domain must be labelled, which images a model
may be scored on. Adding a strategy is adding an entry to `STRATEGIES`. Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# L's images; L translated into U's look; U's own; U's own with another strategy's pseudo labels
TrainSet = Literal["L", "L2U", "U", "U_pseudo"]
Input = Literal["U", "U2L"]  # U's images as they are, or translated into L's look


@dataclass(frozen=True)
class TrainingSet:
    """Labelled images a proxy is trained on: a domain's own, or a translation of it."""

    labels_from: Literal["L", "U"]  # whose images it holds
    translation: str | None = None  # the translation its images come from
    pseudo: bool = False  # its masks are a teacher strategy's pseudo labels, not the domain's


TRAINING_SETS: dict[str, TrainingSet] = {
    "L": TrainingSet("L"),
    "L2U": TrainingSet("L", translation="l2u"),
    "U": TrainingSet("U"),
    "U_pseudo": TrainingSet("U", pseudo=True),
}
INPUT_TRANSLATION: dict[str, str | None] = {"U": None, "U2L": "u2l"}


@dataclass(frozen=True)
class Strategy:
    name: str
    models: tuple[tuple[TrainSet, Input], ...]  # (trained on, segments); softmax averaged
    summary: str
    color: str  # of its bars in the report's chart

    @property
    def train_sets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(train_set for train_set, _ in self.models))

    @property
    def translations(self) -> tuple[str, ...]:
        """The translations it needs: of its training sets, then of its inputs."""
        needed = [TRAINING_SETS[t].translation for t in self.train_sets]
        needed += [INPUT_TRANSLATION[i] for _, i in self.models]
        return tuple(dict.fromkeys(d for d in needed if d))

    @property
    def pseudo(self) -> bool:
        """Trained on another strategy's pseudo labels: trained and scored after it."""
        return any(TRAINING_SETS[t].pseudo for t in self.train_sets)

    @property
    def held_out(self) -> bool:
        """Trained on U's own images: scored only on the U images its fold held out, and never
        with the checkpoint picked on them."""
        return any(TRAINING_SETS[t].labels_from == "U" for t in self.train_sets)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("direct", (("L", "U"),), "the L model segments U as it is", "#4C72B0"),
        Strategy("tutorship", (("L2U", "U"),), "a model trained on L->U segments U", "#DD8452"),
        Strategy(
            "adaptation",
            (("L", "U2L"),),
            "the L model segments U->L translations",
            "#55A868",
        ),
        Strategy(
            "fused",
            (("L2U", "U"), ("L", "U2L")),
            "tutorship and adaptation softmax averaged",
            "#C44E52",
        ),
        Strategy(
            "self_training",
            (("U_pseudo", "U"),),
            "trained on U's own images with a teacher strategy's pseudo labels, k-fold",
            "#8172B3",
        ),
        Strategy(
            "oracle",
            (("U", "U"),),
            "trained on U's own labels, k-fold: the ceiling",
            "#8C8C8C",
        ),
    )
}


def shown_translations(names: list[str]) -> set[str]:
    """The translations the named strategies' models segment (translator.sample.samples draws)."""
    return {INPUT_TRANSLATION[i] for n in names for _, i in STRATEGIES[n].models} - {None}
