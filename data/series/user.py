"""A user's own series file, described before training on it: `seer train MODEL --data FILE`.

`describe_file` reads a CSV/Parquet file, wide (a timestamp column + one column per series) or long
(`unique_id, ds, y`, one series per `unique_id`), and says what training will use: the series (the
chosen `targets`, or every numeric column), the columns left out, the sampling frequency inferred
from the timestamps (`data.series.calendar.infer_frequency`: the calendar features it calls for and the
forecast's step) and the time span. Everything that would stop training later (no timestamp column,
irregular or repeated timestamps, a missing value, an unknown target) is an error here, with what to
fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from data.series.calendar import Frequency, FrequencyError, infer_frequency, n_features
from data.series.readers import DataFormatError, find_date_column, is_long, read_frame, to_wide


@dataclass(frozen=True)
class FileSummary:
    """What a user's file holds, as training will read it."""

    path: str
    long: bool  # long format (`unique_id, ds, y`), pivoted to one column per series
    rows: int  # time steps
    variates: tuple[str, ...]  # the series trained on, in order
    ignored: tuple[str, ...]  # columns left out: text, or not among the chosen targets
    frequency: Frequency
    start: datetime
    end: datetime

    @property
    def calendar_features(self) -> int:
        return n_features(self.frequency.freq)

    def describe(self) -> str:
        """Two lines for the terminal: the file's shape, its frequency and span."""
        shape = "long (unique_id, ds, y)" if self.long else "wide"
        ignored = f"; left out: {', '.join(self.ignored)}" if self.ignored else ""
        gaps = f", {self.frequency.gaps} gaps" if self.frequency.gaps else ""
        return (
            f"data: {self.path} ({shape}): {self.rows} rows × {len(self.variates)} series "
            f"[{', '.join(self.variates[:8])}{', ...' if len(self.variates) > 8 else ''}]{ignored}\n"
            f"frequency: {self.frequency.label} (inferred from the timestamps{gaps}; calendar features "
            f"'{self.frequency.freq}': {self.calendar_features}), "
            f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M}"
        )


def describe_file(path: str | Path, targets: Sequence[str] = ()) -> FileSummary:
    """Read `path` and describe it (see the module docstring); `targets` picks series by column name
    (wide) or `unique_id` (long). Raises `DataFormatError` / `FrequencyError` / `FileNotFoundError`."""
    frame = read_frame(path)
    long = is_long(frame)
    wide = to_wide(frame, date_column="", numeric_only=True)
    numeric = [c for c in wide.columns if c != "date"]
    date_column = "ds" if long else find_date_column(frame)
    extra = [c for c in frame.columns if c not in wide.columns and c != date_column]
    text = [] if long else extra  # a long file's other columns are not series
    if targets:
        unknown = [t for t in targets if t not in numeric]
        if unknown:
            raise DataFormatError(f"{path}: no numeric series named {unknown}; it has {numeric[:12]}")
        variates = list(targets)
    else:
        variates = numeric
    if not variates:
        raise DataFormatError(f"{path}: no numeric column to forecast (columns: {frame.columns[:8]})")
    dates = wide["date"]
    try:
        frequency = infer_frequency(dates)
    except FrequencyError as e:
        raise FrequencyError(f"{path}: {e}") from e
    values = wide.select(variates).to_numpy().astype(np.float64)
    missing = [v for j, v in enumerate(variates) if not np.isfinite(values[:, j]).all()]
    if missing:
        raise DataFormatError(
            f"{path}: missing or non-finite values in {missing[:5]}: fill them or pick other series; "
            "the series of a long file must share their timestamps"
        )
    ignored = tuple(text) + tuple(c for c in numeric if c not in variates)
    return FileSummary(
        path=str(path),
        long=long,
        rows=wide.height,
        variates=tuple(variates),
        ignored=ignored,
        frequency=frequency,
        start=dates[0],
        end=dates[-1],
    )


__all__ = ["DataFormatError", "FileSummary", "FrequencyError", "describe_file"]
