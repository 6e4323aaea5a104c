"""Calendar ("timeF") features, as the Informer/Autoformer/iTransformer family computes them.

Each feature is scaled to [-0.5, 0.5]. The set depends on the sampling frequency: for hourly data
(`h`) hour-of-day, day-of-week, day-of-month, day-of-year; minute data (`t`) adds minute-of-hour in
front; daily (`d`) drops the hour. The official iTransformer scripts pass `freq='h'` for all four ETT
sets (also the 15-minute ones), so the recipes do too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl

_FEATURES: dict[str, tuple[str, ...]] = {
    "t": ("minute", "hour", "weekday", "day", "yearday"),
    "h": ("hour", "weekday", "day", "yearday"),
    "d": ("weekday", "day", "yearday"),
}


def n_features(freq: str) -> int:
    return len(_features(freq))


def _features(freq: str) -> tuple[str, ...]:
    if freq not in _FEATURES:
        raise ValueError(f"unknown calendar freq {freq!r}; use one of {sorted(_FEATURES)}")
    return _FEATURES[freq]


def time_features(dates: pl.Series | Sequence[datetime], freq: str) -> np.ndarray:
    """Calendar features `[T, F]` (float32) for a series of timestamps."""
    if isinstance(dates, pl.Series):
        s = dates
    else:  # calendar features are wall-clock: an offset in the timestamp is dropped, not applied
        s = pl.Series("date", [d.replace(tzinfo=None) for d in dates], dtype=pl.Datetime("us"))
    cols = {
        "minute": s.dt.minute().cast(pl.Float64) / 59.0 - 0.5,
        "hour": s.dt.hour().cast(pl.Float64) / 23.0 - 0.5,
        # polars weekday is 1..7 (Mon..Sun); pandas' dayofweek is 0..6.
        "weekday": (s.dt.weekday().cast(pl.Float64) - 1.0) / 6.0 - 0.5,
        "day": (s.dt.day().cast(pl.Float64) - 1.0) / 30.0 - 0.5,
        "yearday": (s.dt.ordinal_day().cast(pl.Float64) - 1.0) / 365.0 - 0.5,
    }
    feats = [cols[name].to_numpy() for name in _features(freq)]
    return np.stack(feats, axis=1).astype(np.float32) if feats else np.zeros((len(s), 0), np.float32)


def infer_step_seconds(dates: pl.Series) -> int:
    """The most common spacing between timestamps, in seconds."""
    if len(dates) < 2:
        raise ValueError("need at least two timestamps to infer the sampling step")
    step = dates.diff().drop_nulls().mode().sort()[0]
    seconds = int(step.total_seconds())
    if seconds <= 0:
        raise ValueError("timestamps must be strictly increasing")
    return seconds


def future_dates(last: datetime, step_seconds: int, horizon: int) -> list[datetime]:
    """The `horizon` timestamps following `last`, `step_seconds` apart."""
    step = timedelta(seconds=step_seconds)
    return [last + step * (k + 1) for k in range(horizon)]
