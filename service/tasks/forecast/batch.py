"""Forecast jobs run in batches (off the event loop), one answer per job.

Requests are validated in `service.validation` before they may join a batch. Point models: the jobs of
one model version and one variate count share a forward pass. Probabilistic models: each job runs on its
own — its S sample paths already are the batch, and its draws (seeded, see
`ForecastPredictor.predict_quantiles`) must not depend on its batch-mates, so the same request always
gets the same quantiles. Their `forecast` is the median (q = 0.5) of the same sample paths, so it always
lies inside the quantile band, for every horizon up to max_horizon.

Shapes: L lookback, H horizon, N variates, Q quantile levels.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from service.schemas import ForecastResponse, ModelRefOut
from service.validation import MEDIAN, ForecastJob, check_request, invalid

__all__ = ["ForecastJob", "check_request", "predict_batch"]


def predict_batch(jobs: list[ForecastJob]) -> list[ForecastResponse | Exception]:
    """Blocking (call from a worker thread): one answer (or one exception) per job.

    Jobs normally share one model; after a hot swap the queue can hold both versions, and each job is
    answered by the version that validated it. Point jobs are grouped by (model version, N): histories
    of different widths cannot share a tensor.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    out: dict[int, ForecastResponse | Exception] = {}
    for i, job in enumerate(jobs):
        if job.model.predictor.probabilistic:
            out[i] = _predict_probabilistic(job)
        else:
            groups.setdefault((id(job.model), job.history.shape[1]), []).append(i)
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
    return [invalid(str(failure), "history") if isinstance(failure, ValueError) else failure]


def _predict_probabilistic(job: ForecastJob) -> ForecastResponse | Exception:
    """One job's quantiles (its levels and the median) from one seeded call: [1, h, N, Q]."""
    levels = sorted({*(job.levels or ()), MEDIAN})
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            q = job.model.predictor.predict_quantiles(job.history[None], levels, horizon=job.horizon)[0]
    except ValueError as e:  # the predictor's own checks; check_request should have caught these
        return invalid(str(e), "history")
    except Exception as e:
        return e
    by_level = {level: q[..., k] for k, level in enumerate(levels)}  # each [h, N]
    asked = None if job.levels is None else {level: by_level[level] for level in job.levels}
    return _answer(job, by_level[MEDIAN], asked)


def _future(job: ForecastJob) -> list[str] | None:
    """The H timestamps after the request's last one, at the model's step (or, for models trained without
    a fixed step, the request's own last step); None when the request sent none."""
    if job.stamps is None:
        return None
    p = job.model.predictor
    step = p.step_seconds
    if step is None:
        if len(job.stamps) < 2:
            return None
        step = int((job.stamps[-1] - job.stamps[-2]).total_seconds())
    last: datetime = job.stamps[-1]
    return [ts.isoformat() for ts in p.future_timestamps(last, job.horizon, step)]


def _answer(
    job: ForecastJob, y: np.ndarray, quantiles: dict[float, np.ndarray] | None = None
) -> ForecastResponse | Exception:
    """One job's response from its forecast [≥h, N] (and quantiles, level -> [h, N]), or a 422 when any of
    them is not finite."""
    y = y[: job.horizon]
    if not np.isfinite(y).all() or not all(np.isfinite(v).all() for v in (quantiles or {}).values()):
        # Finite inputs far outside the training range overflow float32 after scaling.
        largest = np.nanmax(np.abs(job.history))
        return invalid(
            f"the forecast is not finite for this history (largest |value| {largest:.3g}); "
            "send values in the units and range the model was trained on",
            "history",
        )
    model = job.model
    # Built without re-validating ~H×N floats: every field is made right here (and it holds the GIL that the
    # event loop needs; measured at ~8% of a loaded server's samples when validated).
    return ForecastResponse.model_construct(
        forecast=y.tolist(),
        timestamps=_future(job),
        quantiles=None if quantiles is None else {str(level): v.tolist() for level, v in quantiles.items()},
        model=ModelRefOut.model_construct(name=model.name, version=model.version),
    )
