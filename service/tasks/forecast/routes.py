"""Forecast requests checked against the model's contract, with messages that say what to send.

Everything is checked before a request may join a batch, so a bad one cannot spoil its batch-mates.
Point models take exactly their variates, finite values and at most their horizon; probabilistic
any-variate models (instance-scaled, e.g. Moirai-MoE) take 1..max_variates variates, null/NaN as a
missing value (never a whole variate of them), quantile levels, and horizons up to max_horizon.

Shapes: L lookback, H horizon, N variates, Q quantile levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from inference.tasks.forecast import ForecastPredictor
from service.errors import ServiceError
from service.schemas import ForecastRequest
from service.store import LoadedModel

MAX_QUANTILES = 20  # levels per request: each one is an H × N block of the response
MEDIAN = 0.5  # a probabilistic model's `forecast` is this quantile of its sample paths


def invalid(detail: str, field: str) -> ServiceError:
    return ServiceError(422, detail, field)


def _expected_shape(p: ForecastPredictor) -> str:
    L = p.lookback
    if p.any_variates:
        return f"{L} rows of N values each, 1 <= N <= {p.max_variates} (lookback {L}; any variates, one per column)"
    N = len(p.variates)
    return f"{L} × {N} (lookback {L} rows × variates {', '.join(p.variates)})"


def check_history(p: ForecastPredictor, history: list[list[float | None]]) -> np.ndarray:
    """The request's history as a float64 [L, N] array (null -> NaN), or a 422 naming the expected shape.

    Point models need finite numbers. Models that allow missing values take null/NaN, but not ±inf and
    not a variate with no observed value."""
    L = p.lookback
    expected = _expected_shape(p)
    widths = sorted({len(row) for row in history})
    fits = len(widths) == 1 and (1 <= widths[0] <= p.max_variates if p.any_variates else widths[0] == len(p.variates))
    if len(history) != L or not fits:
        if not history:
            got = "an empty list"
        elif len(widths) == 1:
            got = f"{len(history)} × {widths[0]}"
        else:  # ragged: point at the first row whose width differs from the first row's
            first = len(history[0]) if p.any_variates else len(p.variates)
            bad_row = next(i for i, row in enumerate(history) if len(row) != first)
            got = f"{len(history)} rows of {widths} values; row {bad_row} has {len(history[bad_row])} values"
            raise invalid(f"history must be {expected}; got {got}", f"history.{bad_row}")
        raise invalid(f"history must be {expected}; got {got}", "history")
    x = np.asarray(history, dtype=np.float64)  # [L, N]; None becomes NaN
    if not p.allows_missing:
        bad = np.argwhere(~np.isfinite(x))
        if len(bad):
            i, j = (int(v) for v in bad[0])
            raise invalid(
                f"history holds {len(bad)} NaN or infinite value(s), first at row {i}, column {j} "
                f"({p.variates[j]!r}); send finite numbers (fill gaps before forecasting)",
                f"history.{i}.{j}",
            )
        return x
    inf = np.argwhere(np.isinf(x))
    if len(inf):
        i, j = (int(v) for v in inf[0])
        raise invalid(
            f"history holds {len(inf)} infinite value(s), first at row {i}, column {j}; "
            "send finite numbers, and null for a missing value",
            f"history.{i}.{j}",
        )
    empty = np.flatnonzero(np.isnan(x).all(axis=0))
    if len(empty):
        j = int(empty[0])
        raise invalid(
            f"history has no observed value for variate {j} (column {j} is all null/NaN); "
            "send at least one number per variate, or leave that variate out",
            "history",
        )
    return x


def _parse_timestamp(text: str, i: int) -> datetime:
    try:
        text = text.strip()
        # Python < 3.11 does not read a trailing "Z" (UTC), which most clients send.
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise invalid(
            f"timestamps[{i}] = {text!r} is not an ISO-8601 timestamp (e.g. 2024-01-31T13:00:00)", f"timestamps.{i}"
        ) from None


def check_timestamps(p: ForecastPredictor, timestamps: list[str] | None) -> list[datetime] | None:
    """Parsed timestamps (L, increasing), or None when not given and the model does not need them."""
    L = p.lookback
    if timestamps is None:
        if p.uses_timestamps:
            raise invalid(
                f"this model uses calendar features (freq {p.calendar_freq!r}): send `timestamps`, "
                f"{L} ISO-8601 timestamps, one per history row",
                "timestamps",
            )
        return None
    if len(timestamps) != L:
        raise invalid(
            f"timestamps must hold {L} ISO-8601 timestamps, one per history row; got {len(timestamps)}", "timestamps"
        )
    stamps = [_parse_timestamp(t, i) for i, t in enumerate(timestamps)]
    if len({ts.tzinfo is None for ts in stamps}) > 1:
        raise invalid("timestamps mix values with and without a UTC offset; use one form for all", "timestamps")
    for i in range(1, L):
        if stamps[i] <= stamps[i - 1]:
            raise invalid(
                f"timestamps must be strictly increasing; timestamps[{i}] is not after timestamps[{i - 1}]",
                f"timestamps.{i}",
            )
    return stamps


def check_quantiles(model: LoadedModel, levels: list[float] | None) -> tuple[float, ...] | None:
    """The requested levels (1..MAX_QUANTILES, strictly increasing, inside (0, 1)), or a 422."""
    if levels is None:
        return None
    if not model.predictor.probabilistic:
        raise invalid(
            f"model {model.name!r} gives point forecasts only and cannot return quantiles; omit `quantiles`",
            "quantiles",
        )
    example = "e.g. [0.1, 0.5, 0.9]"
    if not 1 <= len(levels) <= MAX_QUANTILES:
        raise invalid(f"quantiles must hold 1 to {MAX_QUANTILES} levels, {example}; got {len(levels)}", "quantiles")
    for i, level in enumerate(levels):
        if not 0.0 < level < 1.0:  # NaN fails this too
            raise invalid(f"quantiles[{i}] = {level} is not strictly between 0 and 1 ({example})", f"quantiles.{i}")
        if i and level <= levels[i - 1]:
            raise invalid(
                f"quantiles must be strictly increasing (sorted, no duplicates), {example}; "
                f"quantiles[{i}] = {level} is not above quantiles[{i - 1}] = {levels[i - 1]}",
                f"quantiles.{i}",
            )
    return tuple(float(level) for level in levels)


@dataclass(frozen=True)
class ForecastJob:
    """One validated forecast request, ready to join a batch."""

    model: LoadedModel
    history: np.ndarray  # [L, N] float64: finite, or NaN = missing where the model allows it
    stamps: list[datetime] | None  # L parsed timestamps, or None
    horizon: int  # steps to return: 1..H for point models, 1..max_horizon for probabilistic ones
    levels: tuple[float, ...] | None = None  # requested quantile levels (probabilistic models only)


def check_request(model: LoadedModel, req: ForecastRequest) -> ForecastJob:
    """Everything a forecast needs, validated before it may join a batch (so it cannot spoil one)."""
    p = model.predictor
    levels = check_quantiles(model, req.quantiles)
    if req.horizon is not None and req.horizon > p.max_horizon:
        bound = "max_horizon" if p.probabilistic else "horizon"
        raise invalid(f"horizon must be at most {p.max_horizon} (this model's {bound}); got {req.horizon}", "horizon")
    history = check_history(p, req.history)
    stamps = check_timestamps(p, req.timestamps)
    return ForecastJob(model, history, stamps, req.horizon or p.horizon, levels)
