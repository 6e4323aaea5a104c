"""The forecast request and its rules, written once: `parse_request(predictor, request)` returns a
validated `ForecastInput` or the first `Reason` the request cannot be served, with a message that says
what to send (the service answers it as a 4xx, word for word).

Rules, in the order they are checked (the first failure is told): quantile levels (probabilistic models
only; 1..MAX_QUANTILES numbers, strictly increasing, inside (0, 1) also in float32, the precision the
quantiles are computed in), horizon (a whole number, 1..max_horizon), history (L rows × the model's
variates, or 1..max_variates for any-variate models; numbers, never strings or booleans; finite, or NaN /
None where missing values are allowed but never ±inf nor a variate with no observed value), timestamps
(required by models with calendar features; L of them, ISO-8601, one form of offset, strictly increasing,
at the model's step (`step_seconds`: calendar features and the answer's timestamps assume it; a whole
multiple of it is a gap of missing rows, but most steps must be the step itself), or evenly spaced for
models trained without a fixed step; the answer's timestamps must stay before year 10000).
Everything a request contributes is checked here, so nothing it sent can fail inside a batch.

Shapes: L lookback, H horizon, N variates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np

from data.series.calendar import future_dates
from inference.predictor import Reason, Refused

if TYPE_CHECKING:
    from inference.tasks.forecast.predictor import ForecastPredictor

MAX_QUANTILES = 20  # levels per request: each one is an H × N block of the response
LEVELS_EXAMPLE = "e.g. [0.1, 0.5, 0.9]"


@dataclass(frozen=True, eq=False)
class ForecastInput:
    """One forecast request. Raw fields go through `parse_request`, which returns one of these with every
    rule checked: history [L, N] float64 (NaN = missing), L parsed timestamps or None, the horizon
    (resolved to the trained one when not asked), the requested quantile levels or None, and the
    timestamps after the last one (max(horizon, H) of them: the model's calendar needs H) or None."""

    history: np.ndarray
    timestamps: Sequence[datetime] | None = None
    horizon: int | None = None
    levels: tuple[float, ...] | None = None
    future: Sequence[datetime] | None = None


@dataclass(frozen=True, eq=False)
class ForecastOutput:
    """One answer: forecast [h, N] in original units (the median of the sample paths for probabilistic
    models), the requested levels -> [h, N], and the h timestamps after the request's last one."""

    forecast: np.ndarray
    quantiles: dict[float, np.ndarray] | None
    timestamps: list[datetime] | None


def refuse(message: str, where: str) -> Refused:
    return Refused(Reason(message, where))


def parse_request(p: ForecastPredictor, request: ForecastInput | Mapping[str, Any]) -> ForecastInput | Reason:
    """`request` (a `ForecastInput`, or a mapping of the JSON fields `history`, `timestamps`, `quantiles`,
    `horizon`) as a validated `ForecastInput` for `p`, or the first `Reason` it cannot be served."""
    history: Any
    stamps: Any
    if isinstance(request, ForecastInput):
        history, stamps, horizon, levels = request.history, request.timestamps, request.horizon, request.levels
    else:
        history, stamps = request.get("history"), request.get("timestamps")
        horizon, levels = request.get("horizon"), request.get("quantiles")
    try:
        checked_levels = check_levels(p, levels)
        checked_horizon = check_horizon(p, horizon)
        x = check_history(p, history)
        checked_stamps = check_timestamps(p, stamps)
        future = None if checked_stamps is None else future_stamps(p, checked_stamps, max(checked_horizon, p.horizon))
    except Refused as e:
        return e.reason
    return ForecastInput(x, checked_stamps, checked_horizon, checked_levels, future)


def _number(value: Any) -> bool:
    """A real number as JSON has them: not a boolean (a subclass of int), not a string."""
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _what(value: Any) -> str:
    return "a boolean" if isinstance(value, (bool, np.bool_)) else f"{type(value).__name__} {str(value)[:40]!r}"


def check_levels(p: ForecastPredictor, levels: Sequence[float] | None) -> tuple[float, ...] | None:
    if levels is None:
        return None
    if not p.probabilistic:
        raise refuse("this model gives point forecasts only and cannot return quantiles; omit `quantiles`", "quantiles")
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence):
        raise refuse(f"quantiles must be a list of levels, {LEVELS_EXAMPLE}", "quantiles")
    if not 1 <= len(levels) <= MAX_QUANTILES:
        why = f"quantiles must hold 1 to {MAX_QUANTILES} levels, {LEVELS_EXAMPLE}; got {len(levels)}"
        raise refuse(why, "quantiles")
    for i, level in enumerate(levels):
        if not _number(level):
            raise refuse(f"quantiles[{i}] must be a number, {LEVELS_EXAMPLE}; got {_what(level)}", f"quantiles.{i}")
        if not 0.0 < level < 1.0:  # NaN fails this too
            why = f"quantiles[{i}] = {level} is not strictly between 0 and 1 ({LEVELS_EXAMPLE})"
            raise refuse(why, f"quantiles.{i}")
        if not 0.0 < np.float32(level) < 1.0:  # the sample paths' quantiles are computed in float32
            why = (
                f"quantiles[{i}] = {level} rounds to {float(np.float32(level)):g} in float32, the precision "
                f"quantiles are computed in; use a level between 1e-6 and 1 - 1e-6 ({LEVELS_EXAMPLE})"
            )
            raise refuse(why, f"quantiles.{i}")
        if i and level <= levels[i - 1]:
            raise refuse(
                f"quantiles must be strictly increasing (sorted, no duplicates), {LEVELS_EXAMPLE}; "
                f"quantiles[{i}] = {level} is not above quantiles[{i - 1}] = {levels[i - 1]}",
                f"quantiles.{i}",
            )
    return tuple(float(level) for level in levels)


def check_horizon(p: ForecastPredictor, horizon: int | None) -> int:
    """A whole number 1..max_horizon (the trained horizon for point models); the trained one when not asked."""
    if horizon is None:
        return p.horizon
    if not isinstance(horizon, Integral) or isinstance(horizon, (bool, np.bool_)):
        raise refuse(f"horizon must be a whole number of steps (e.g. {p.horizon}); got {_what(horizon)}", "horizon")
    if horizon < 1:
        raise refuse(f"horizon must be at least 1; got {horizon}", "horizon")
    if horizon > p.max_horizon:
        bound = "max_horizon" if p.probabilistic else "horizon"
        raise refuse(f"horizon must be at most {p.max_horizon} (this model's {bound}); got {horizon}", "horizon")
    return int(horizon)


def check_history(p: ForecastPredictor, history: Any) -> np.ndarray:
    """History as float64 [L, N] (None -> NaN): shaped as the model needs; finite, or NaN where missing
    values are allowed (never ±inf, never a variate with no observed value)."""
    if history is None:
        raise refuse("history is required", "history")
    x = history_array(p, history)
    if not p.allows_missing:
        bad = np.argwhere(~np.isfinite(x))
        if len(bad):
            i, j = (int(v) for v in bad[0])
            raise refuse(
                f"history holds {len(bad)} NaN or infinite value(s), first at row {i}, column {j} "
                f"({p.variates[j]!r}); send finite numbers (fill gaps before forecasting)",
                f"history.{i}.{j}",
            )
        return x
    inf = np.argwhere(np.isinf(x))
    if len(inf):
        i, j = (int(v) for v in inf[0])
        raise refuse(
            f"history holds {len(inf)} infinite value(s), first at row {i}, column {j}; "
            "send finite numbers, and null for a missing value",
            f"history.{i}.{j}",
        )
    empty = np.flatnonzero(np.isnan(x).all(axis=0))
    if len(empty):
        j = int(empty[0])
        raise refuse(
            f"history has no observed value for variate {j} (column {j} is all null/NaN); "
            "send at least one number per variate, or leave that variate out",
            "history",
        )
    return x


def _expected_shape(p: ForecastPredictor) -> str:
    L = p.lookback
    if p.any_variates:
        return f"{L} rows of N values each, 1 <= N <= {p.max_variates} (lookback {L}; any variates, one per column)"
    return f"{L} × {len(p.variates)} (lookback {L} rows × variates {', '.join(p.variates)})"


def _fits(p: ForecastPredictor, width: int) -> bool:
    return 1 <= width <= p.max_variates if p.any_variates else width == len(p.variates)


def history_array(p: ForecastPredictor, history: Any) -> np.ndarray:
    """[L, N] float64 of the right shape (an array, or L lists of N values), or a refusal naming the
    expected shape (and the first ragged row)."""
    expected = _expected_shape(p)
    if isinstance(history, np.ndarray):
        if history.ndim != 2 or len(history) != p.lookback or not _fits(p, history.shape[1]):
            got = " × ".join(map(str, history.shape)) or "a scalar"
            raise refuse(f"history must be {expected}; got {got}", "history")
        if history.dtype.kind not in "fiu":  # strings, booleans, objects: not numbers
            raise refuse(f"history must hold numbers; got an array of {history.dtype}", "history")
        return history.astype(np.float64, copy=False)
    try:
        widths = sorted({len(row) for row in history})
    except TypeError:
        raise refuse(f"history must be {expected}; got something that is not a list of rows", "history") from None
    if len(history) != p.lookback or not (len(widths) == 1 and _fits(p, widths[0])):
        if not history:
            got = "an empty list"
        elif len(widths) == 1:
            got = f"{len(history)} × {widths[0]}"
        else:  # ragged: point at the first row whose width differs from the first row's
            first = len(history[0]) if p.any_variates else len(p.variates)
            bad_row = next(i for i, row in enumerate(history) if len(row) != first)
            got = f"{len(history)} rows of {widths} values; row {bad_row} has {len(history[bad_row])} values"
            raise refuse(f"history must be {expected}; got {got}", f"history.{bad_row}")
        raise refuse(f"history must be {expected}; got {got}", "history")
    check_values(history)
    return np.asarray(history, dtype=np.float64)  # [L, N]; None becomes NaN


_PLAIN = frozenset({float, int, type(None)})  # what parsed JSON holds; anything else is looked at closely


def check_values(history: Sequence[Sequence[Any]]) -> None:
    """Every value a number or None: numpy would read the string "1.5" and `true` as numbers."""
    if {type(v) for row in history for v in row} <= _PLAIN:
        return  # the common case, one pass
    for i, row in enumerate(history):
        for j, v in enumerate(row):
            if v is not None and not _number(v):
                raise refuse(
                    f"history[{i}][{j}] must be a number (or null for a missing value); got {_what(v)}",
                    f"history.{i}.{j}",
                )


def check_timestamps(p: ForecastPredictor, timestamps: Sequence[str | datetime] | None) -> list[datetime] | None:
    """L increasing timestamps (parsed), or None when not given and the model does not need them."""
    L = p.lookback
    if timestamps is None:
        if p.uses_timestamps:
            raise refuse(
                f"this model uses calendar features (freq {p.calendar_freq!r}): send `timestamps`, "
                f"{L} ISO-8601 timestamps, one per history row",
                "timestamps",
            )
        return None
    if len(timestamps) != L:
        why = f"timestamps must hold {L} ISO-8601 timestamps, one per history row; got {len(timestamps)}"
        raise refuse(why, "timestamps")
    stamps = [t if isinstance(t, datetime) else parse_timestamp(t, i) for i, t in enumerate(timestamps)]
    if len({ts.tzinfo is None for ts in stamps}) > 1:
        raise refuse("timestamps mix values with and without a UTC offset; use one form for all", "timestamps")
    for i in range(1, L):
        if stamps[i] <= stamps[i - 1]:
            raise refuse(
                f"timestamps must be strictly increasing; timestamps[{i}] is not after timestamps[{i - 1}]",
                f"timestamps.{i}",
            )
    check_step(p, stamps)
    return stamps


def duration(step: timedelta) -> str:
    """A step as a person writes it: 1 h, 15 min, 1 day, 0.5 s."""
    seconds = step.total_seconds()
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''}"
    return f"{seconds:g} s"


def check_step(p: ForecastPredictor, stamps: Sequence[datetime]) -> None:
    """Timestamps at the model's step (the calendar features and the answer's timestamps assume it), where
    a longer step that is a whole number of it is a gap of missing rows (as in the data it trained on) but
    most steps must be the model's own; or, for a model trained without a fixed step, evenly spaced."""
    if len(stamps) < 2:
        return
    diffs = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
    if p.step_seconds is None:
        rule = "evenly spaced (the answer's timestamps continue their step); leave `timestamps` out otherwise"
        bad = next((i for i, d in enumerate(diffs) if d != diffs[0]), None)
        if bad is not None:
            raise _off_step(rule, stamps, bad + 1)
        return
    step = timedelta(seconds=p.step_seconds)
    if all(d == step for d in diffs):  # the common case, one pass
        return
    months = _months(p.step_seconds, stamps[0])
    if months:  # counted from the first, as an anchor on a day of the month is (Jan 30, Feb 29, Mar 30)
        expected = future_dates(stamps[0], p.step_seconds, len(stamps) - 1)
        bad = next((i for i, (got, want) in enumerate(zip(stamps[1:], expected, strict=True)) if got != want), None)
        if bad is not None:
            raise _off_step(
                f"{months} calendar month(s) apart (this model's step), from timestamps[0]", stamps, bad + 1
            )
        return
    rule = f"{duration(step)} apart (this model's step: it learned from such data)"
    bad = next((i for i, d in enumerate(diffs) if d % step), None)
    if bad is not None:
        raise _off_step(rule + f"; a gap of missing rows must be a whole number of {duration(step)}", stamps, bad + 1)
    exact = sum(d == step for d in diffs)
    if 2 * exact < len(diffs):
        first = next(i for i, d in enumerate(diffs) if d != step)
        most = f"a longer step counts as missing rows, but only {exact} of the {len(diffs)} steps are {duration(step)}"
        raise _off_step(f"{rule}; {most}", stamps, first + 1)


def _months(step_seconds: int, first: datetime) -> int:
    """Calendar months per step when the model steps by calendar months (`future_dates` does not add a
    fixed number of seconds then), else 0."""
    try:
        (after,) = future_dates(first, step_seconds, 1)
    except (OverflowError, ValueError):
        return 0
    if after - first == timedelta(seconds=step_seconds):
        return 0
    return (after.year - first.year) * 12 + after.month - first.month


def _off_step(rule: str, stamps: Sequence[datetime], i: int) -> Refused:
    return refuse(
        f"timestamps must be {rule}; timestamps[{i}] is {duration(stamps[i] - stamps[i - 1])} after "
        f"timestamps[{i - 1}]",
        f"timestamps.{i}",
    )


def future_stamps(p: ForecastPredictor, stamps: Sequence[datetime], n: int) -> list[datetime] | None:
    """The `n` timestamps after the last one, at the model's step (calendar months counted from the first,
    as `check_step` does) or the request's own; a refusal when they would pass the year 9999 (the last
    datetime there is). None for one timestamp and no fixed step."""
    try:
        if p.step_seconds is not None:
            if _months(p.step_seconds, stamps[0]):
                return future_dates(stamps[0], p.step_seconds, len(stamps) - 1 + n)[len(stamps) - 1 :]
            return future_dates(stamps[-1], p.step_seconds, n)
        if len(stamps) < 2:
            return None
        step = stamps[-1] - stamps[-2]  # exact, microseconds included (a sub-second step stays one)
        return [stamps[-1] + step * (k + 1) for k in range(n)]
    except (OverflowError, ValueError):
        raise refuse(
            f"the {n} forecast timestamps after timestamps[{len(stamps) - 1}] = {stamps[-1].isoformat()} would "
            "pass 9999-12-31, the last date there is; send earlier timestamps or leave them out",
            "timestamps",
        ) from None


def parse_timestamp(text: str, i: int) -> datetime:
    """timestamps[i] as a datetime; a trailing Z means UTC."""
    try:
        text = text.strip()
        # Python < 3.11 does not read a trailing "Z" (UTC), which most clients send.
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except (ValueError, AttributeError):
        raise refuse(
            f"timestamps[{i}] = {text!r} is not an ISO-8601 timestamp (e.g. 2024-01-31T13:00:00)", f"timestamps.{i}"
        ) from None
