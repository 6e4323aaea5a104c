"""The forecast request and its rules, written once: `parse_request(predictor, request)` returns a
validated `ForecastInput` or the first `Reason` the request cannot be served, with a message that says
what to send (the service answers it as a 4xx, word for word).

Rules, in the order they are checked (the first failure is told): quantile levels (probabilistic models
only; 1..MAX_QUANTILES, strictly increasing, inside (0, 1)), horizon (1..max_horizon), history (L rows ×
the model's variates, or 1..max_variates for any-variate models; finite, or NaN where missing values are
allowed but never ±inf nor a variate with no observed value), timestamps (required by models with
calendar features; L of them, ISO-8601, one form of offset, strictly increasing).

Shapes: L lookback, H horizon, N variates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.predictor import Reason, Refused

if TYPE_CHECKING:
    from inference.tasks.forecast.predictor import ForecastPredictor

MAX_QUANTILES = 20  # levels per request: each one is an H × N block of the response
LEVELS_EXAMPLE = "e.g. [0.1, 0.5, 0.9]"


@dataclass(frozen=True, eq=False)
class ForecastInput:
    """One forecast request. Raw fields go through `parse_request`, which returns one of these with every
    rule checked: history [L, N] float64 (NaN = missing), L parsed timestamps or None, the horizon
    (resolved to the trained one when not asked), the requested quantile levels or None."""

    history: np.ndarray
    timestamps: Sequence[datetime] | None = None
    horizon: int | None = None
    levels: tuple[float, ...] | None = None


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
    except Refused as e:
        return e.reason
    return ForecastInput(x, checked_stamps, checked_horizon, checked_levels)


def check_levels(p: ForecastPredictor, levels: Sequence[float] | None) -> tuple[float, ...] | None:
    if levels is None:
        return None
    if not p.probabilistic:
        raise refuse("this model gives point forecasts only and cannot return quantiles; omit `quantiles`", "quantiles")
    if not 1 <= len(levels) <= MAX_QUANTILES:
        why = f"quantiles must hold 1 to {MAX_QUANTILES} levels, {LEVELS_EXAMPLE}; got {len(levels)}"
        raise refuse(why, "quantiles")
    for i, level in enumerate(levels):
        if not 0.0 < level < 1.0:  # NaN fails this too
            why = f"quantiles[{i}] = {level} is not strictly between 0 and 1 ({LEVELS_EXAMPLE})"
            raise refuse(why, f"quantiles.{i}")
        if i and level <= levels[i - 1]:
            raise refuse(
                f"quantiles must be strictly increasing (sorted, no duplicates), {LEVELS_EXAMPLE}; "
                f"quantiles[{i}] = {level} is not above quantiles[{i - 1}] = {levels[i - 1]}",
                f"quantiles.{i}",
            )
    return tuple(float(level) for level in levels)


def check_horizon(p: ForecastPredictor, horizon: int | None) -> int:
    """1..max_horizon (the trained horizon for point models); the trained horizon when not asked."""
    if horizon is None:
        return p.horizon
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
    try:
        return np.asarray(history, dtype=np.float64)  # [L, N]; None becomes NaN
    except (TypeError, ValueError):
        raise refuse("history must hold numbers (or null for a missing value)", "history") from None


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
    return stamps


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
