"""Calendar ("timeF") features, as the Informer/Autoformer/iTransformer family computes them, and the
sampling frequency of a series inferred from its timestamps.

Each feature is scaled to [-0.5, 0.5]. The set depends on the sampling frequency, as in
`time_features_from_frequency_str` of the official code (zhouhaoyi/Informer2020 utils/timefeatures.py,
thuml/Time-Series-Library utils/timefeatures.py):
  `s` second-of-minute, minute-of-hour, hour-of-day, day-of-week, day-of-month, day-of-year;
  `t` (minutes) the same without the second; `h` from hour-of-day on; `d` from day-of-week on;
  `w` (weekly) day-of-month and week-of-year; `m` (monthly, quarterly) month-of-year.
The official iTransformer scripts pass `freq='h'` for all four ETT sets (also the 15-minute ones), so
the recipes do too.

Steps of whole calendar months (monthly, quarterly, yearly data) have no fixed length in seconds; they
are written as a multiple of `MONTH_SECONDS` (the mean Gregorian month, a length no regular series
has), and `future_dates` steps such a series by calendar months.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

_FEATURES: dict[str, tuple[str, ...]] = {
    "s": ("second", "minute", "hour", "weekday", "day", "yearday"),
    "t": ("minute", "hour", "weekday", "day", "yearday"),
    "h": ("hour", "weekday", "day", "yearday"),
    "d": ("weekday", "day", "yearday"),
    "w": ("day", "week"),
    "m": ("month",),
}
FREQ_NAMES = {"s": "secondly", "t": "minutely", "h": "hourly", "d": "daily", "w": "weekly", "m": "monthly"}
DAY = 86_400
MONTH_SECONDS = 2_629_746  # 365.2425 / 12 days: the unit of calendar-month steps (see the module docstring)


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
        "second": s.dt.second().cast(pl.Float64) / 59.0 - 0.5,
        "minute": s.dt.minute().cast(pl.Float64) / 59.0 - 0.5,
        "hour": s.dt.hour().cast(pl.Float64) / 23.0 - 0.5,
        # polars weekday is 1..7 (Mon..Sun); pandas' dayofweek is 0..6.
        "weekday": (s.dt.weekday().cast(pl.Float64) - 1.0) / 6.0 - 0.5,
        "day": (s.dt.day().cast(pl.Float64) - 1.0) / 30.0 - 0.5,
        "yearday": (s.dt.ordinal_day().cast(pl.Float64) - 1.0) / 365.0 - 0.5,
        "week": (s.dt.week().cast(pl.Float64) - 1.0) / 52.0 - 0.5,  # ISO week 1..53
        "month": (s.dt.month().cast(pl.Float64) - 1.0) / 11.0 - 0.5,
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


def month_step(step_seconds: int) -> int:
    """Calendar months per step when `step_seconds` is a multiple of `MONTH_SECONDS`, else 0."""
    return step_seconds // MONTH_SECONDS if step_seconds > 0 and step_seconds % MONTH_SECONDS == 0 else 0


def add_months(when: datetime, months: int) -> datetime:
    """`when` moved by whole calendar months: the same day of the month (the last day where the month is
    shorter), or the month's last day when `when` is one (Jan 31 → Feb 28/29 → Mar 31)."""
    month_end = when.day == monthrange(when.year, when.month)[1]
    index = when.year * 12 + when.month - 1 + months
    year, month = divmod(index, 12)
    last_day = monthrange(year, month + 1)[1]
    return when.replace(year=year, month=month + 1, day=last_day if month_end else min(when.day, last_day))


def future_dates(last: datetime, step_seconds: int, horizon: int) -> list[datetime]:
    """The `horizon` timestamps following `last`, `step_seconds` apart (calendar months for a step of
    whole months, see `month_step`)."""
    months = month_step(step_seconds)
    if months:
        return [add_months(last, months * (k + 1)) for k in range(horizon)]
    step = timedelta(seconds=step_seconds)
    return [last + step * (k + 1) for k in range(horizon)]


class FrequencyError(ValueError):
    """The timestamps have no sampling frequency Seer can use; the message says what to fix."""


@dataclass(frozen=True)
class Frequency:
    """A series' sampling: its calendar-feature set (`freq`), the step between rows (`step_seconds`, a
    multiple of `MONTH_SECONDS` for calendar months) and how many steps were gaps (missing rows)."""

    freq: str
    step_seconds: int
    gaps: int = 0

    @property
    def label(self) -> str:
        """A person's word for it: "weekly", "every 15 minutes", "quarterly"."""
        months = month_step(self.step_seconds)
        if months:
            return {1: "monthly", 3: "quarterly", 12: "yearly"}.get(months, f"every {months} months")
        for unit, seconds in (("week", 7 * DAY), ("day", DAY), ("hour", 3600), ("minute", 60), ("second", 1)):
            if self.step_seconds % seconds == 0:
                n = self.step_seconds // seconds
                return FREQ_NAMES[self.freq] if n == 1 else f"every {n} {unit}s"
        return f"every {self.step_seconds} s"


def _months_apart(dates: list[datetime]) -> int:
    """The constant number of calendar months between consecutive timestamps anchored on one day of the
    month (or all on month ends) at one time of day; 0 when they are not such a series."""
    if len(dates) < 2 or len({d.time() for d in dates}) != 1:
        return 0
    ends = [d.day == monthrange(d.year, d.month)[1] for d in dates]
    if not (all(ends) or len({d.day for d in dates}) == 1):
        return 0
    gaps = {(b.year - a.year) * 12 + b.month - a.month for a, b in zip(dates, dates[1:], strict=False)}
    step = min(gaps)
    return step if step > 0 and all(g % step == 0 for g in gaps) else 0


def infer_frequency(dates: pl.Series | Sequence[datetime]) -> Frequency:
    """The sampling frequency of sorted timestamps: the most common step, every other step a whole
    multiple of it (a gap of missing rows, counted), and the calendar features it calls for. Monthly,
    quarterly and yearly steps are found on the calendar. `FrequencyError` says what is wrong
    otherwise (too few rows, repeated or decreasing timestamps, irregular steps)."""
    values = list(dates.to_list() if isinstance(dates, pl.Series) else dates)
    if len(values) < 3:
        raise FrequencyError(f"need at least 3 timestamps to infer the sampling frequency, got {len(values)}")
    steps = [(b - a).total_seconds() for a, b in zip(values, values[1:], strict=False)]
    bad = next((i for i, s in enumerate(steps) if s <= 0), None)
    if bad is not None:
        what = "repeats" if steps[bad] == 0 else "goes back in time"
        raise FrequencyError(
            f"timestamps must be strictly increasing: row {bad + 1} ({values[bad + 1]}) {what} after {values[bad]}"
        )
    months = _months_apart(values)
    if months:
        pairs = zip(values, values[1:], strict=False)
        gaps = sum(1 for a, b in pairs if (b.year - a.year) * 12 + b.month - a.month != months)
        return Frequency("m", months * MONTH_SECONDS, gaps)
    counts: dict[float, int] = {}
    for s in steps:
        counts[s] = counts.get(s, 0) + 1
    step = max(counts, key=lambda s: (counts[s], -s))  # the most common; the shorter on a tie
    if step != int(step):
        raise FrequencyError(f"the most common step is {step} s: sub-second steps are not supported")
    odd = sorted({s for s in steps if s % step}, key=lambda s: -counts[s])
    if odd:
        shown = ", ".join(f"{timedelta(seconds=s)} ×{counts[s]}" for s in odd[:3])
        raise FrequencyError(
            f"irregular timestamps: the usual step is {timedelta(seconds=step)} ({counts[step]} of "
            f"{len(steps)} steps) but others are not a whole number of it ({shown}); resample the "
            "series to one regular step"
        )
    seconds = int(step)
    freq = "s" if seconds < 60 else "t" if seconds < 3600 else "h" if seconds < DAY else "d"
    if seconds % (7 * DAY) == 0:
        freq = "w"
    return Frequency(freq, seconds, sum(1 for s in steps if s != step))
