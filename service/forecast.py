"""Forecast requests: checked against the model's contract with messages that say what to send, then run.

Shapes: L lookback, H horizon, N variates.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class ForecastJob:
    """One validated forecast request, ready to join a batch."""

    model: LoadedModel
    history: np.ndarray  # [L, N] float64, finite
    stamps: list[datetime] | None  # L parsed timestamps, or None
    horizon: int  # steps to return, 1..H


def check_request(model: LoadedModel, req: ForecastRequest) -> ForecastJob:
    """Everything a forecast needs, validated before it may join a batch (so it cannot spoil one)."""
    p = model.predictor
    if req.quantiles is not None:
        # Every registered forecaster is a point model today; a probabilistic one will add a quantile path.
        raise _invalid(
            f"model {model.name!r} gives point forecasts only and cannot return quantiles; omit `quantiles`",
            "quantiles",
        )
    if req.horizon is not None and req.horizon > p.horizon:
        raise _invalid(f"horizon must be at most {p.horizon} (this model's horizon); got {req.horizon}", "horizon")
    history = check_history(p, req.history)
    stamps = check_timestamps(p, req.timestamps)
    return ForecastJob(model, history, stamps, req.horizon or p.horizon)


def predict_batch(jobs: list[ForecastJob]) -> list[ForecastResponse | Exception]:
    """Blocking (call from a worker thread): one forward pass per model object, one answer per job.

    Jobs normally share one model; after a hot swap the queue can hold both versions, and each job is
    answered by the version that validated it.
    """
    groups: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(id(job.model), []).append(i)
    out: dict[int, ForecastResponse | Exception] = {}
    for idx in groups.values():
        out.update(zip(idx, _predict_one_model([jobs[i] for i in idx]), strict=True))
    return [out[i] for i in range(len(jobs))]


def _predict_one_model(jobs: list[ForecastJob]) -> list[ForecastResponse | Exception]:
    p = jobs[0].model.predictor
    history = np.stack([job.history for job in jobs])  # [B, L, N]
    stamps = [job.stamps or [] for job in jobs] if p.uses_timestamps else None
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported per job below, not logged
            y = p.predict(history, stamps)  # [B, H, N]
    except Exception as e:
        failure = e
    else:
        return [_answer(job, y[b]) for b, job in enumerate(jobs)]
    if len(jobs) > 1:  # find the job at fault: its batch-mates still get their answers
        return [_predict_one_model([job])[0] for job in jobs]
    # The predictor's own checks (ValueError); the ones in check_request should have caught these.
    return [_invalid(str(failure), "history") if isinstance(failure, ValueError) else failure]


def _answer(job: ForecastJob, y: np.ndarray) -> ForecastResponse | Exception:
    """One job's response from its forecast [H, N], or a 422 when that forecast is not finite."""
    y = y[: job.horizon]
    if not np.isfinite(y).all():
        # Finite inputs far outside the training range overflow float32 after scaling.
        return _invalid(
            f"the forecast is not finite for this history (largest |value| {np.abs(job.history).max():.3g}); "
            "send values in the units and range the model was trained on",
            "history",
        )
    p, model = job.model.predictor, job.model
    future = None
    if job.stamps is not None:
        future = [ts.isoformat() for ts in p.future_timestamps(job.stamps[-1])[: job.horizon]]
    # Built without re-validating ~H×N floats: every field is made right here (and it holds the GIL that the
    # event loop needs; measured at ~8% of a loaded server's samples when validated).
    return ForecastResponse.model_construct(
        forecast=y.tolist(),
        timestamps=future,
        quantiles=None,
        model=ModelRefOut.model_construct(name=model.name, version=model.version),
    )
