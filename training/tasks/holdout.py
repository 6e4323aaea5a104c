"""The `Holdout` protocol: what the retraining scheduler needs from a task to compare two models.

A retraining job (`training.retrain`) trains a challenger on fresh data and scores it and the champion
on the same holdout. Everything in that story that depends on what the data and the models are (how
the fresh files are read and combined, what the challenger trains on, what a holdout window is, how a
prediction is scored) is the task's, behind this protocol; the scheduler stays generic and reaches a
task's holdout through `training.tasks.holdout_for(recipe.task)`.

The task's payloads (its frame of fresh data, its window positions) travel through the scheduler
inside `FreshData` and `HoldoutWindows` without being looked at; only their `describe` dicts are
logged.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from training.recipes import Recipe


@dataclass(frozen=True)
class FreshData:
    """What a job's `data:` pattern matched, read and combined by the task's holdout.

    `payload` is the task's own (the forecast task: one wide polars frame); `describe` is what the
    retraining run logs about it as params (e.g. `first_date`, `last_date`)."""

    files: list[Path]
    rows: int
    payload: Any
    describe: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HoldoutWindows:
    """The holdout both models are scored on: `count` windows at the end of the fresh data.

    `payload` is the task's own (the forecast task: a range of forecast origins); `describe` is logged
    as `holdout_<key>` params and in the `holdout` block of `decision.json` (e.g. `first_origin`)."""

    count: int
    payload: Any
    describe: dict[str, str] = field(default_factory=dict)


class Holdout(Protocol):
    """How one task's models are compared on fresh data (`training.tasks.<task>.holdout`)."""

    @property
    def task(self) -> str:
        """The task whose models this holdout compares (`core.registry.TASKS`)."""
        ...

    @property
    def metrics(self) -> tuple[str, ...]:
        """The scores `score` returns and a job may promote on (`metric:`); lower is better, the first is
        the default. The jobs file is validated against them."""
        ...

    def read(self, pattern: str) -> FreshData:
        """Every file a path or glob matches (sorted by name), combined into one data set.

        Raises FileNotFoundError when nothing matches, `data.series.readers.DataFormatError` (a
        ValueError) with the file's name when one cannot be read or does not fit with the others."""
        ...

    def write(self, fresh: FreshData, directory: Path, stem: str) -> Path:
        """Write the fresh data under `directory` as a data set file the challenger's recipe trains on
        (`recipe.data.dataset`); returns its path."""
        ...

    def windows(self, fresh: FreshData, recipe: Recipe, count: int) -> HoldoutWindows:
        """The last `count` holdout windows of the fresh data, for a model trained by `recipe`.

        ValueError (saying how many fit) if they reach outside the rows the challenger's training keeps
        for its test split: the challenger must never have trained or early-stopped on them."""
        ...

    def incomparable(self, champion: Any, challenger: Any) -> str | None:
        """Why two loaded predictors of this task cannot be scored on one holdout (worded to follow the
        champion's name: "forecasts 8 steps, the challenger 4: ..."), or None."""
        ...

    def score(self, predictor: Any, fresh: FreshData, windows: HoldoutWindows) -> dict[str, float]:
        """Every name in `metrics` → the predictor's score over the holdout windows (lower is better).

        ValueError if the predictor cannot be applied to this data (missing variables, windows out of
        range)."""
        ...


def match_files(pattern: str) -> list[Path]:
    """The files a `data:` path or glob (`**` recurses) matches, sorted by name; none is an error."""
    if glob.has_magic(pattern):
        files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    else:
        files = [Path(pattern)] if Path(pattern).is_file() else []
    if not files:
        raise FileNotFoundError(f"no data files match {pattern!r}")
    return files
