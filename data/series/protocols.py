"""Train/val/test row borders of the standard long-horizon forecasting protocols.

ETT (Informer's `Dataset_ETT_hour/minute`): 12/4/4 months of 30 days — train rows [0, 8640),
val [8640, 11520), test [11520, 14400) for hourly files, ×4 for 15-minute files; rows after that are
unused. Others (`Dataset_Custom`): 70/10/20 chronological. Validation and test windows start
`lookback` rows before their border so that their first target is the border row, and every test
window is kept (no `drop_last`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Split:
    """Row ranges `[start, end)` of the raw series that each split's windows may touch."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def n_windows(self, part: str, lookback: int, horizon: int) -> int:
        start, end = getattr(self, part)
        return max(0, end - start - lookback - horizon + 1)


def ett_split(n_rows: int, lookback: int, minutes_per_step: int = 60) -> Split:
    """ETT 12/4/4-month borders; `minutes_per_step` 60 (ETTh) or 15 (ETTm)."""
    per_month = 30 * 24 * 60 // minutes_per_step
    train_end, val_end, test_end = 12 * per_month, 16 * per_month, 20 * per_month
    if n_rows < test_end:
        raise ValueError(f"ETT protocol needs {test_end} rows, the file has {n_rows}")
    return Split(train=(0, train_end), val=(train_end - lookback, val_end), test=(val_end - lookback, test_end))


def ratio_split(n_rows: int, lookback: int, train: float = 0.7, test: float = 0.2) -> Split:
    """Chronological split by ratio (`Dataset_Custom`: 70/10/20)."""
    n_train = int(n_rows * train)
    n_test = int(n_rows * test)
    n_val = n_rows - n_train - n_test
    if n_train <= lookback or min(n_val, n_test) < 1:
        raise ValueError(
            f"{n_rows} rows are too few for a {train:.0%}/{1 - train - test:.0%}/{test:.0%} split with lookback "
            f"{lookback}: the training part ({n_train} rows) must be longer than the lookback"
        )
    return Split(
        train=(0, n_train),
        val=(n_train - lookback, n_train + n_val),
        test=(n_rows - n_test - lookback, n_rows),
    )


def fit_lookback(n_rows: int, horizon: int, preferred: int, train: float = 0.7, test: float = 0.2) -> int:
    """The lookback for a file of `n_rows` under the ratio split: `preferred`, or less where the file is
    short, so that the training part keeps at least half its rows as windows. Raises when the
    validation or test part cannot hold one `horizon` (the message says how many rows would)."""
    n_train, n_test = int(n_rows * train), int(n_rows * test)
    n_val = n_rows - n_train - n_test
    if min(n_val, n_test) < horizon:
        need = math.ceil(horizon / min(test, 1 - train - test))
        raise ValueError(
            f"{n_rows} rows are too few for horizon {horizon}: the validation and test parts "
            f"({1 - train - test:.0%} and {test:.0%} of the rows: {n_val} and {n_test}) must each hold at least "
            f"{horizon} rows; use a shorter horizon or a file of at least {need} rows"
        )
    longest = n_train - horizon + 1 - max(1, n_train // 2)  # half the training rows stay windows
    if longest < 1:
        raise ValueError(f"{n_rows} rows leave no lookback for horizon {horizon}; use a shorter horizon")
    return min(preferred, longest)


def describe_split(split: Split, dates: Sequence[Any], lookback: int, horizon: int) -> str:
    """The split in a person's words: each part's rows, dates and forecast windows."""
    parts = []
    for part in ("train", "val", "test"):
        start, end = getattr(split, part)
        first = start if part == "train" else start + lookback  # val/test windows reach back one lookback
        parts.append(
            f"{part} rows {first}-{end - 1} ({dates[first]:%Y-%m-%d %H:%M} .. {dates[end - 1]:%Y-%m-%d %H:%M}, "
            f"{split.n_windows(part, lookback, horizon)} windows)"
        )
    return "; ".join(parts)
