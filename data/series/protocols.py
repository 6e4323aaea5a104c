"""Train/val/test row borders of the standard long-horizon forecasting protocols.

ETT (Informer's `Dataset_ETT_hour/minute`): 12/4/4 months of 30 days — train rows [0, 8640),
val [8640, 11520), test [11520, 14400) for hourly files, ×4 for 15-minute files; rows after that are
unused. Others (`Dataset_Custom`): 70/10/20 chronological. Validation and test windows start
`lookback` rows before their border so that their first target is the border row, and every test
window is kept (no `drop_last`).
"""

from __future__ import annotations

from dataclasses import dataclass


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
    if min(n_train, n_val, n_test) <= lookback:
        raise ValueError(f"{n_rows} rows are too few for a {train:.0%}/{1 - train - test:.0%}/{test:.0%} split")
    return Split(
        train=(0, n_train),
        val=(n_train - lookback, n_train + n_val),
        test=(n_rows - n_test - lookback, n_rows),
    )
