"""The champion/challenger decision and the alias it moves.

no champion yet → `first` (the challenger becomes `@champion`); challenger < champion × (1 − margin) →
`promoted` (`@champion` moves to it); else `kept` (`@challenger` points at it, `@champion` stays). Scores
are "lower is better" (every task's holdout metrics are). If `@champion` was moved by someone else while
the job ran, the job fails instead of overwriting it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
DECISIONS = ("first", "promoted", "kept")


def decide(champion: float | None, challenger: float, min_improvement: float) -> tuple[str, float | None]:
    """(`first` | `promoted` | `kept`, relative improvement): promoted iff challenger < champion × (1 − margin)."""
    if not math.isfinite(challenger):
        raise ValueError(f"the challenger's holdout score is {challenger}")
    if champion is None:
        return "first", None
    if not math.isfinite(champion):
        raise ValueError(f"the champion's holdout score is {champion}")
    improvement = (champion - challenger) / champion if champion > 0 else 0.0  # a perfect champion: a tie at best
    promoted = challenger < champion and improvement >= min_improvement
    return ("promoted" if promoted else "kept"), improvement


@dataclass(frozen=True)
class Verdict:
    """The decision on one challenger and what it does to the aliases."""

    decision: str  # first | promoted | kept
    improvement: float | None  # relative, None without a champion
    alias: str  # the alias the challenger gets
    champion_after: str | None  # the version @champion points at once the alias moved


def judge(
    scores: dict[str, float], metric: str, min_improvement: float, challenger: str, champion_before: str | None
) -> Verdict:
    """The verdict on version `challenger` from `scores` (`champion_<metric>`, `challenger_<metric>`)."""
    decision, improvement = decide(scores.get(f"champion_{metric}"), scores[f"challenger_{metric}"], min_improvement)
    alias = CHAMPION if decision in ("first", "promoted") else CHALLENGER
    return Verdict(decision, improvement, alias, challenger if alias == CHAMPION else champion_before)


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """The model's aliases; {} if the model is not registered yet (any other error propagates)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {k: str(v) for k, v in (model.aliases or {}).items()}


def move_alias(client: MlflowClient, name: str, verdict: Verdict, version: str, champion_before: str | None) -> None:
    """Point the verdict's alias at `version`; refuses to move a `@champion` someone else moved meanwhile."""
    if verdict.alias == CHAMPION:
        current = aliases(client, name).get(CHAMPION)
        if current != champion_before:
            raise RuntimeError(
                f"@champion of {name} moved from {champion_before} to {current} while the job ran; not overwriting"
            )
    client.set_registered_model_alias(name, verdict.alias, version)
