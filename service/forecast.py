"""Forecast requests: checked against the model's contract with messages that say what to send, then run.

Shapes: L lookback, H horizon, N variates.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from data.artifact import ForecastPredictor
from service.errors import ServiceError
from service.schemas import ForecastRequest, ForecastResponse, ModelRefOut
from service.store import LoadedModel


def _invalid(detail: str, field: str) -> ServiceError:
    return ServiceError(422, detail, field)


def check_history(p: ForecastPredictor, history: list[list[float]]) -> np.ndarray:
    """The request's history as a float64 [L, N] array, or a 422 naming the expected L × N."""
    L, N = p.lookback, len(p.variates)
    expected = f"{L} × {N} (lookback {L} rows × variates {', '.join(p.variates)})"
    widths = sorted({len(row) for row in history})
    if len(history) != L or widths != [N]:
        if not history:
            got = "an empty list"
        elif len(widths) == 1:
            got = f"{len(history)} × {widths[0]}"
        else:  # ragged: point at the first row that is off
            bad_row = next(i for i, row in enumerate(history) if len(row) != N)
            got = f"{len(history)} rows of {widths} values; row {bad_row} has {len(history[bad_row])} values"
            raise _invalid(f"history must be {expected}; got {got}", f"history.{bad_row}")
        raise _invalid(f"history must be {expected}; got {got}", "history")
    x = np.asarray(history, dtype=np.float64)  # [L, N]
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        i, j = (int(v) for v in bad[0])
        raise _invalid(
            f"history holds {len(bad)} NaN or infinite value(s), first at row {i}, column {j} "
            f"({p.variates[j]!r}); send finite numbers (fill gaps before forecasting)",
            f"history.{i}.{j}",
        )
    return x


def _parse_timestamp(text: str, i: int) -> datetime:
    try:
        text = text.strip()
        # Python < 3.11 does not read a trailing "Z" (UTC), which most clients send.
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise _invalid(
            f"timestamps[{i}] = {text!r} is not an ISO-8601 timestamp (e.g. 2024-01-31T13:00:00)", f"timestamps.{i}"
        ) from None


def check_timestamps(p: ForecastPredictor, timestamps: list[str] | None) -> list[datetime] | None:
    """Parsed timestamps (L, increasing), or None when not given and the model does not need them."""
    L = p.lookback
    if timestamps is None:
        if p.uses_timestamps:
            raise _invalid(
                f"this model uses calendar features (freq {p.calendar_freq!r}): send `timestamps`, "
                f"{L} ISO-8601 timestamps, one per history row",
                "timestamps",
            )
        return None
    if len(timestamps) != L:
        raise _invalid(
            f"timestamps must hold {L} ISO-8601 timestamps, one per history row; got {len(timestamps)}", "timestamps"
        )
    stamps = [_parse_timestamp(t, i) for i, t in enumerate(timestamps)]
    if len({ts.tzinfo is None for ts in stamps}) > 1:
        raise _invalid("timestamps mix values with and without a UTC offset; use one form for all", "timestamps")
    for i in range(1, L):
        if stamps[i] <= stamps[i - 1]:
            raise _invalid(
                f"timestamps must be strictly increasing; timestamps[{i}] is not after timestamps[{i - 1}]",
                f"timestamps.{i}",
            )
    return stamps


def check_request(model: LoadedModel, req: ForecastRequest) -> tuple[np.ndarray, list[datetime] | None]:
    """Everything a forecast needs, validated: history [L, N] and the parsed timestamps (or None)."""
    if req.quantiles is not None:
        # Every registered forecaster is a point model today; a probabilistic one will add a quantile path.
        raise _invalid(
            f"model {model.name!r} gives point forecasts only and cannot return quantiles; omit `quantiles`",
            "quantiles",
        )
    history = check_history(model.predictor, req.history)
    stamps = check_timestamps(model.predictor, req.timestamps)
    return history, stamps


def run_forecast(model: LoadedModel, history: np.ndarray, stamps: list[datetime] | None) -> ForecastResponse:
    """Blocking: scale → model → unscale on one window (call from a worker thread)."""
    p = model.predictor
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, not logged
            y = p.predict(history[None], None if stamps is None else [stamps])[0]  # [H, N]
    except ValueError as e:  # the predictor's own checks; the ones above should have caught these
        raise _invalid(str(e), "history") from e
    if not np.isfinite(y).all():
        # Finite inputs far outside the training range overflow float32 after scaling.
        raise _invalid(
            f"the forecast is not finite for this history (largest |value| {np.abs(history).max():.3g}); "
            "send values in the units and range the model was trained on",
            "history",
        )
    future = [ts.isoformat() for ts in p.future_timestamps(stamps[-1])] if stamps is not None else None
    return ForecastResponse(
        forecast=y.tolist(), timestamps=future, model=ModelRefOut(name=model.name, version=model.version)
    )
