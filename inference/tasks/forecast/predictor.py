"""The forecast task's predictor: original-unit forecasting around a bundle (scale → model → unscale).

Requests go through `parse` / `validate` (the rules, written once, are in `request.py`); the service maps
a `Reason` to its 4xx and keeps no rules of its own. Point models take exactly their variates, finite
values and at most their horizon; probabilistic any-variate models (instance-scaled) take 1..max_variates
variates, NaN as a missing value, quantile levels, and horizons up to max_horizon. `predict_batch`,
`point_forecast` and `quantile_forecast` trust validated input; `predict` and `predict_quantiles` are the
checked array API (the same rules per row).

The bundle's `transform` (`inference.bundle`): {scaler, variates, calendar_freq, step_seconds, lookback,
horizon, dataset, kind, max_variates, max_horizon}. Two kinds of transform:
  standard (default): a global per-variate `scaler` fitted on the training data, a fixed list of
      `variates`, finite histories only; a point forecast of the trained `horizon`.
  instance (`"kind": "instance"`, foundation models): `scaler` null (the model
      scales each series itself from its observed context), `variates` null (any number of variates,
      up to `max_variates`, default 64), NaN = missing; with `"probabilistic": true` in the meta (or a
      model that has `quantiles`), quantile forecasts up to `max_horizon` (default: `horizon`).
Shapes: B batch, L lookback, H horizon, N variates, F calendar features, Q quantile levels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.registry import ProbabilisticForecaster
from data.scalers import StandardScaler
from data.series.calendar import future_dates, time_features
from inference.bundle import BundleError
from inference.predictor import BundledPredictor, Cancelled, Reason, Refused, add_checkpoints
from inference.tasks.forecast.request import ForecastInput, ForecastOutput, parse_request, refuse

DEFAULT_MAX_VARIATES = 64  # any-variate models: the most variates one request may hold (work bound)
MEDIAN = 0.5  # a probabilistic model's point forecast is this quantile of its sample paths
WARM_UP_LEVELS = (0.1, 0.5, 0.9)
# The work of one sampled forecast of N variates over h steps after a context of L (the sample paths, a
# constant of the model, cancel out of a cost relative to the model's own reference request):
# h · (L + h/2) · (3 + N + N²/12). Fitted to the decoding time of an any-variate attention forecaster
# with 100 paths, context 256, patch 16 (4 layers, d 128; one CPU thread): N = 1, 4, 16, 64 at h = 64
# took 0.18, 0.54, 2.0, 19 s (the formula: 1, 3.0, 9.9, 100 ×; measured 1, 3.0, 11, 105 ×), and h = 256
# 5.2, 4.0, 4.0, 4.7 × longer (the formula: 5.3 ×): each new step attends to the context and the steps
# before it, and across variates.
COST_FIXED, COST_QUADRATIC = 3.0, 1.0 / 12.0


@dataclass
class ForecastPredictor(BundledPredictor):
    """Original-unit forecasting around a bundle: scale → model → unscale.

    Standard bundles scale with the stored global scaler; instance-scaled bundles pass the history
    through as it is (the model scales each series itself).
    """

    task: ClassVar[str] = "forecast"
    model: nn.Module
    meta: dict[str, Any]
    scaler: StandardScaler | None = field(init=False)  # None: identity (instance-scaled models)

    def __post_init__(self) -> None:
        spec = self.meta["transform"].get("scaler")
        self.scaler = None if spec is None else StandardScaler.from_dict(spec)
        if self.scaler is None and self.kind != "instance":
            raise BundleError(f"{self.name}: transform has no scaler but its kind is {self.kind!r}, not 'instance'")
        if self.variates_spec is None and self.kind != "instance":
            raise BundleError(f"{self.name}: transform has no variates but its kind is {self.kind!r}, not 'instance'")
        bound = self.meta["transform"].get("max_cost")
        if bound is not None and not (isinstance(bound, (int, float)) and not isinstance(bound, bool) and bound > 0):
            raise BundleError(f"{self.name}: transform max_cost must be a positive number, got {bound!r}")
        add_checkpoints(self.model)  # a server may stop (or pause) a forecast between its layers

    # Metadata the service exposes.
    @property
    def kind(self) -> str:
        """The transform kind: standard (global scaler, fixed variates) or instance (the model scales each
        series itself; any variates)."""
        return str(self.meta["transform"].get("kind") or "standard")

    @property
    def lookback(self) -> int:
        return int(self.meta["transform"]["lookback"])

    @property
    def horizon(self) -> int:
        """The trained horizon: the default number of steps, and the most a point model gives."""
        return int(self.meta["transform"]["horizon"])

    @property
    def probabilistic(self) -> bool:
        """Serves quantiles: the meta says so, or (when it is silent) the model has a `quantiles` method."""
        flag = self.meta.get("probabilistic")
        return bool(flag) if flag is not None else isinstance(self.model, ProbabilisticForecaster)

    @property
    def max_horizon(self) -> int:
        """The longest horizon served: the transform's `max_horizon` for probabilistic models (sampled
        autoregressively), else the trained horizon."""
        if not self.probabilistic:
            return self.horizon
        return int(self.meta["transform"].get("max_horizon") or self.horizon)

    @property
    def variates_spec(self) -> list[str] | None:
        names = self.meta["transform"].get("variates")
        return None if names is None else list(names)

    @property
    def any_variates(self) -> bool:
        """True when a history may hold any number of variates (1..max_variates), in any order."""
        return self.variates_spec is None

    @property
    def variates(self) -> list[str]:
        """The variate names in the model's order; empty for any-variate models."""
        return self.variates_spec or []

    @property
    def max_variates(self) -> int:
        """The most variates a history may hold: the transform's `max_variates` (default 64) for
        any-variate models, else the number of named variates."""
        if not self.any_variates:
            return len(self.variates)
        return int(self.meta["transform"].get("max_variates") or DEFAULT_MAX_VARIATES)

    @property
    def allows_missing(self) -> bool:
        """NaN in a history means "missing" (masked by the model) rather than an error."""
        return self.kind == "instance" or self.probabilistic

    @property
    def calendar_freq(self) -> str:
        return str(self.meta["transform"].get("calendar_freq") or "")

    @property
    def step_seconds(self) -> int | None:
        """Seconds between rows of the training data; None when the bundle does not fix one."""
        step = self.meta["transform"].get("step_seconds")
        return None if step is None else int(step)

    @property
    def uses_timestamps(self) -> bool:
        return bool(self.calendar_freq)

    @property
    def example_input(self) -> dict[str, Any]:
        return dict(self.meta.get("example_input") or {})

    def describe(self) -> dict[str, Any]:
        """The forecast block of the model info: what a request may hold and what it gets back."""
        return {
            "lookback": self.lookback,
            "horizon": self.horizon,
            "variates": self.variates,
            "freq": self.calendar_freq,
            "step_seconds": self.step_seconds,
            "uses_timestamps": self.uses_timestamps,
            "quantiles": self.probabilistic,
            "probabilistic": self.probabilistic,
            "max_horizon": self.max_horizon,
            "any_variates": self.any_variates,
            "max_variates": self.max_variates,
            "allows_missing": self.allows_missing,
            "max_cost": self.max_cost,
        }

    # The work of a request (`inference.predictor.CostModel`), for a server that bounds it per request.
    def _work(self, n: int, h: int) -> float:
        """A sampled forecast's work, up to the model's constant (see COST_FIXED): h · (L + h/2) · (3 + N + N²/12)."""
        return h * (self.lookback + h / 2) * (COST_FIXED + n + COST_QUADRATIC * n * n)

    @cached_property
    def _reference_work(self) -> float:
        """The work of the model's reference request: the example's variates (else all, else one) over the
        trained horizon."""
        history = self.example_input.get("history")
        n = len(history[0]) if isinstance(history, list) and history and isinstance(history[0], list) else 0
        return self._work(n or max(1, len(self.variates)), self.horizon)

    def cost(self, inp: ForecastInput) -> float:
        """The input's work in units of the reference request (1.0). Point models forecast one fixed shape:
        every request costs 1; probabilistic ones grow with the variates (N²: attention across them) and the
        horizon (each sampled step attends to those before it)."""
        if not self.probabilistic:
            return 1.0
        return self._work(inp.history.shape[1], inp.horizon or self.horizon) / self._reference_work

    @property
    def max_cost(self) -> float:
        """The most one request may cost: the transform's `max_cost`, else the largest request the other
        bounds allow at the trained horizon (max_variates variates): each bound stays reachable alone, not
        all at once (max_variates at max_horizon would be ~60× the work on a 64-step model)."""
        bound = self.meta["transform"].get("max_cost")
        if bound is not None:
            return float(bound)  # checked when loaded
        if not self.probabilistic:
            return 1.0
        return self._work(self.max_variates, self.horizon) / self._reference_work

    def too_costly(self, inp: ForecastInput, cost: float) -> Reason:
        n, h = inp.history.shape[1], inp.horizon or self.horizon
        return Reason(
            f"this request is too much work: {n} variates over horizon {h} cost {cost:.3g} × this model's "
            f"reference request, and one request may cost at most {self.max_cost:.3g} × (`max_cost` in the model "
            "info; the work grows with the horizon and the square of the variates): ask for a shorter horizon "
            "or send the variates in several requests",
            "history",
            413,
        )

    def future_timestamps(
        self, last: datetime, horizon: int | None = None, step_seconds: int | None = None
    ) -> list[datetime]:
        """The `horizon` (default: the trained horizon) timestamps after `last`, `step_seconds` apart
        (default: the bundle's step; one of the two must be known)."""
        step = step_seconds if step_seconds is not None else self.step_seconds
        if step is None:
            raise ValueError(f"{self.name} has no step_seconds: pass the step to future_timestamps")
        return future_dates(last, step, self.horizon if horizon is None else horizon)

    def parse(self, request: ForecastInput | Mapping[str, Any]) -> ForecastInput | Reason:
        """The request as a validated `ForecastInput`, or the first `Reason` it cannot be served (the rules
        are in `inference.tasks.forecast.request`). `request` is a `ForecastInput` or a mapping of the JSON
        fields: `history` (L rows of N numbers, None/NaN = missing), `timestamps` (L ISO-8601 strings or
        datetimes), `quantiles`, `horizon`."""
        return parse_request(self, request)

    def validate(self, request: ForecastInput | Mapping[str, Any]) -> Reason | None:
        """`parse` without the input: None when the request can be served, else what to fix."""
        parsed = self.parse(request)
        return parsed if isinstance(parsed, Reason) else None

    # Prediction on validated input.
    def predict_batch(self, inputs: Sequence[ForecastInput]) -> list[ForecastOutput | Exception]:
        """Blocking: one answer (or one exception) per input accepted by `parse`, in order.

        Point models: inputs of one variate count share a forward pass; a pass that raises is retried one
        input at a time, so the input at fault fails alone. Probabilistic models: each input runs on its
        own — its S sample paths already are the batch, and its seeded draws must not depend on its
        batch-mates, so the same request always gets the same quantiles. Their forecast is the median of
        the same sample paths, so it always lies inside the quantile band, up to max_horizon.
        """
        if self.probabilistic:
            return [self._quantile_output(inp) for inp in inputs]
        groups: dict[int, list[int]] = {}  # N -> input indices: histories of different widths cannot stack
        for i, inp in enumerate(inputs):
            groups.setdefault(inp.history.shape[1], []).append(i)
        out: dict[int, ForecastOutput | Exception] = {}
        for idx in groups.values():
            out.update(zip(idx, self._point_outputs([inputs[i] for i in idx]), strict=True))
        return [out[i] for i in range(len(inputs))]

    def _point_outputs(self, inputs: list[ForecastInput]) -> list[ForecastOutput | Exception]:
        history = np.stack([inp.history for inp in inputs])  # [B, L, N]
        stamps = [inp.timestamps or [] for inp in inputs] if self.uses_timestamps else None
        futures = [inp.future or [] for inp in inputs] if self.uses_timestamps else None
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is told per input below, not logged
                y = self.point_forecast(history, stamps, futures)  # [B, H, N]
        except Cancelled as e:
            return [e] * len(inputs)
        except Exception as e:
            if len(inputs) > 1:  # find the input at fault: its batch-mates still get their answers
                return [self._point_outputs([inp])[0] for inp in inputs]
            return [_as_refusal(e)]
        return [self._answer(inp, y[b]) for b, inp in enumerate(inputs)]

    def _quantile_output(self, inp: ForecastInput) -> ForecastOutput | Exception:
        """One input's quantiles (its levels and the median) from one seeded call: [1, h, N, Q]."""
        levels = sorted({*(inp.levels or ()), MEDIAN})
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                q = self.quantile_forecast(inp.history[None], levels, inp.horizon or self.horizon)[0]
        except Exception as e:
            return _as_refusal(e)
        by_level = {level: q[..., k] for k, level in enumerate(levels)}  # each [h, N]
        asked = None if inp.levels is None else {level: by_level[level] for level in inp.levels}
        return self._answer(inp, by_level[MEDIAN], asked)

    def _answer(
        self, inp: ForecastInput, y: np.ndarray, quantiles: dict[float, np.ndarray] | None = None
    ) -> ForecastOutput | Exception:
        """`_output`, whose failure (a bug: the input passed every rule) is this input's alone."""
        try:
            return self._output(inp, y, quantiles)
        except Exception as e:
            return e

    def _output(
        self, inp: ForecastInput, y: np.ndarray, quantiles: dict[float, np.ndarray] | None = None
    ) -> ForecastOutput | Exception:
        """The answer from a forecast [≥h, N] (and level -> [h, N]), refused when any of it is not finite."""
        y = y[: inp.horizon or self.horizon]
        if not np.isfinite(y).all() or not all(np.isfinite(v).all() for v in (quantiles or {}).values()):
            # Finite inputs far outside the training range overflow float32 after scaling.
            largest = np.nanmax(np.abs(inp.history))
            return refuse(
                f"the forecast is not finite for this history (largest |value| {largest:.3g}); "
                "send values in the units and range the model was trained on",
                "history",
            )
        return ForecastOutput(y, quantiles, self._future(inp))

    def _future(self, inp: ForecastInput) -> list[datetime] | None:
        """The h timestamps after the input's last one, as `parse` made them (at the model's step, or, for
        models trained without a fixed step, the input's own step); None when the input has none."""
        return None if inp.future is None else list(inp.future[: inp.horizon or self.horizon])

    def _scaled(self, history: np.ndarray) -> torch.Tensor:
        if self.scaler is None:
            return torch.from_numpy(history.astype(np.float32))
        return torch.from_numpy(self.scaler.transform(history.reshape(-1, history.shape[-1])).reshape(history.shape))

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def point_forecast(
        self,
        history: np.ndarray,
        timestamps: Sequence[Sequence[datetime]] | None = None,
        futures: Sequence[Sequence[datetime]] | None = None,
    ) -> np.ndarray:
        """Trusts its input (see `parse`): history [B, L, N] in original units (+ B lists of L timestamps
        for models that use calendar features, and optionally the ≥ H timestamps after each, as `parse`
        gives them) -> point forecast [B, H, N] in original units."""
        x = self._scaled(history)
        marks = future = None
        if self.uses_timestamps and timestamps is not None:
            # One call for the whole batch: per-request calls dominated a batched forecast's CPU time.
            # The horizon's calendar follows the last timestamp at the training data's step.
            if futures is None:
                futures = [self.future_timestamps(ts[-1]) for ts in timestamps]
            flat = [t for ts, fut in zip(timestamps, futures, strict=True) for t in (*ts, *fut[: self.horizon])]
            both = torch.from_numpy(
                time_features(flat, self.calendar_freq).reshape(len(timestamps), self.lookback + self.horizon, -1)
            )
            marks, future = both[:, : self.lookback], both[:, self.lookback :]
        device = self._device()
        y = self.model(  # [B, H, N] scaled
            x.to(device),
            None if marks is None else marks.to(device),
            None if future is None else future.to(device),
        )
        y_np = y.float().cpu().numpy().astype(np.float64)
        if self.scaler is not None:
            y_np = self.scaler.inverse(y_np.reshape(-1, y_np.shape[-1])).reshape(y_np.shape)
        return y_np

    @torch.no_grad()
    def quantile_forecast(
        self,
        history: np.ndarray,
        levels: Sequence[float],
        horizon: int,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """Trusts its input (see `parse`): history [B, L, N] in original units (NaN = missing) ->
        quantiles [B, h, N, Q] in original units, empirical quantiles over `num_samples` sample paths
        (default: the model's). The draws come from a generator seeded with `seed`, so the same call
        gives the same numbers; they depend on the whole batch, so call with B = 1 for answers that do
        not depend on other rows."""
        model = self.model
        if not isinstance(model, ProbabilisticForecaster):
            kind = type(model).__name__
            raise BundleError(f"{self.name}: the bundle says probabilistic, but {kind} has no quantiles")
        device = self._device()
        generator = torch.Generator(device=device).manual_seed(seed)
        x = self._scaled(history).to(device)  # a probabilistic model on a global scaler is scaled too
        out = model.quantiles(x, list(levels), num_samples=num_samples, generator=generator, horizon=horizon)
        y = out.float().cpu().numpy().astype(np.float64)  # [B, h, N, Q]
        if self.scaler is not None:  # per variate; an affine map with std > 0 keeps the quantiles' order
            y = (y * self.scaler.std[:, None] + self.scaler.mean[:, None]).astype(np.float64)
        return y

    # The checked array API (pyfunc, training, scripts): the request rules per row, then the trusted path.
    def predict(
        self,
        history: np.ndarray,
        timestamps: Sequence[Sequence[datetime]] | None = None,
        horizon: int | None = None,
    ) -> np.ndarray:
        """history [B, L, N] in original units (+ B lists of L timestamps) -> point forecast [B, h, N],
        h = `horizon` (default and most: the trained horizon H; the model forecasts H and the first h
        steps are returned). `Refused` (a ValueError) when a row breaks a request rule."""
        inputs = self._parse_rows(history, timestamps, horizon, None)
        h = self.horizon if horizon is None else int(horizon)
        if h > self.horizon:
            hint = f"; quantile forecasts reach {self.max_horizon}" if self.max_horizon > self.horizon else ""
            raise refuse(f"point forecasts cover horizon 1..{self.horizon}, got {h}{hint}", "horizon")
        stamps = [inp.timestamps or [] for inp in inputs] if self.uses_timestamps else None
        futures = [inp.future or [] for inp in inputs] if self.uses_timestamps else None
        return self.point_forecast(np.stack([inp.history for inp in inputs]), stamps, futures)[:, :h]

    def predict_quantiles(
        self,
        history: np.ndarray,
        levels: Sequence[float],
        horizon: int | None = None,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """history [B, L, N] in original units (NaN = missing) -> quantiles [B, h, N, Q] in original units,
        h = `horizon` (default H, at most `max_horizon`); see `quantile_forecast`. `Refused` (a
        ValueError) when a row breaks a request rule (levels strictly increasing inside (0, 1))."""
        inputs = self._parse_rows(history, None, horizon, levels)
        h = inputs[0].horizon or self.horizon
        return self.quantile_forecast(np.stack([inp.history for inp in inputs]), levels, h, num_samples, seed)

    def _parse_rows(
        self,
        history: np.ndarray,
        timestamps: Sequence[Sequence[datetime]] | None,
        horizon: int | None,
        levels: Sequence[float] | None,
    ) -> list[ForecastInput]:
        """Each row of a [B, L, N] batch through `parse`; the first refusal is raised, naming its row."""
        x = np.asarray(history, dtype=np.float64)
        if x.ndim != 3 or len(x) == 0:
            raise refuse(f"history must be a batch [B, L, N] with B >= 1, got shape {list(x.shape)}", "history")
        if timestamps is not None and len(timestamps) != len(x):
            raise refuse(f"timestamps must hold one list per history ({len(x)}), got {len(timestamps)}", "timestamps")
        lv = None if levels is None else tuple(float(level) for level in levels)
        inputs: list[ForecastInput] = []
        for b in range(len(x)):
            parsed = self.parse(ForecastInput(x[b], None if timestamps is None else timestamps[b], horizon, lv))
            if isinstance(parsed, Reason):
                raise Refused(replace(parsed, message=f"batch row {b}: {parsed.message}") if len(x) > 1 else parsed)
            inputs.append(parsed)
        return inputs

    def warm_up(self) -> None:
        """One prediction on the bundle's example input, through the path the service uses (so the first
        request is not the slow one), which also validates the bundle: the example must be a valid request,
        the answer horizon × variates and finite, quantiles (probabilistic models) ordered like their levels
        and max_horizon within the model's own. ValueError otherwise (a hot reload then refuses the version).
        """
        if isinstance(self.model, ProbabilisticForecaster) and self.max_horizon > self.model.max_horizon:
            own = self.model.max_horizon
            raise ValueError(f"the metadata's max_horizon {self.max_horizon} exceeds the model's {own}")
        levels = WARM_UP_LEVELS if self.probabilistic else None
        inp = self.parse({**self._warm_up_request(), "quantiles": levels})
        if isinstance(inp, Reason):
            raise ValueError(f"the example input is not a valid request: {inp.message}")
        (out,) = self.predict_batch([inp])
        if isinstance(out, Exception):
            raise ValueError(f"warm-up forecast on the example input failed: {out}") from out
        H, N = self.horizon, inp.history.shape[1]
        if out.forecast.shape != (H, N):
            raise ValueError(f"warm-up forecast has shape {out.forecast.shape}, the metadata says ({H}, {N})")
        if out.quantiles is not None:
            q = np.stack([out.quantiles[level] for level in WARM_UP_LEVELS], axis=-1)  # [H, N, Q]
            if (np.diff(q, axis=-1) < 0).any():
                raise ValueError("warm-up quantiles on the example input decrease with the level")

    def _warm_up_request(self) -> dict[str, Any]:
        """The example input; where it lacks a history, a synthetic window (at the scaler's mean, or a ramp
        for instance-scaled models), and where it lacks timestamps a model needs, hourly-or-step ones."""
        example = self.example_input
        L = self.lookback
        history = example.get("history")
        if history is None:
            if self.scaler is None:
                history = np.linspace(0.0, 1.0, L)[:, None].repeat(max(1, len(self.variates)), axis=1)
            else:
                history = np.broadcast_to(self.scaler.mean, (L, len(self.variates)))
        stamps = example.get("timestamps") or None
        if stamps is None and self.uses_timestamps:
            step = timedelta(seconds=self.step_seconds or 3600)
            stamps = [datetime(2020, 1, 1) + step * k for k in range(L)]
        return {"history": np.asarray(history, dtype=np.float64), "timestamps": stamps}

    def pyfunc_predict(self, model_input: Any) -> pd.DataFrame:
        """The MLflow pyfunc forecast of one history: H rows, `date` (when known) + one column per variate.

        Input: a DataFrame with one column per variate (L rows, original units) and, for models that use
        calendar features, a `date` column; or a dict `{"history": [[..N] × L], "timestamps": [ISO × L]}`;
        or an [L, N] array (any-variate models are logged with a tensor signature of shape (-1, -1); over
        `mlflow models serve`: `{"inputs": [[..N] × L]}`; MLflow's schema check refuses a DataFrame there)."""
        if isinstance(model_input, np.ndarray):
            if model_input.ndim != 2:
                raise ValueError(f"expected an [L, N] array of history, got shape {model_input.shape}")
            history, stamps = model_input.astype(np.float64), None
            names = self.variates or [str(j) for j in range(history.shape[1])]
        elif isinstance(model_input, dict):
            history = np.asarray(model_input["history"], dtype=np.float64)
            stamps = model_input.get("timestamps")
            names = self.variates or [str(j) for j in range(history.shape[-1] if history.ndim else 0)]
        else:
            frame = pd.DataFrame(model_input)
            missing = [v for v in self.variates if v not in frame.columns]
            if missing:
                raise ValueError(f"input lacks variate columns {missing}; expected {self.variates}")
            columns = self.variates or [c for c in frame.columns if c != "date"]  # any-variate: all but date
            history = frame[columns].to_numpy(dtype=np.float64)
            names = [str(c) for c in columns]
            stamps = frame["date"].astype(str).tolist() if "date" in frame.columns else None
        inp = self.parse({"history": history, "timestamps": None if stamps is None else [str(s) for s in stamps]})
        if isinstance(inp, Reason):
            raise Refused(inp)
        timestamps = None if inp.timestamps is None else [inp.timestamps]
        futures = None if inp.future is None else [inp.future]
        forecast = self.point_forecast(inp.history[None], timestamps, futures)[0]  # [H, N]
        out = pd.DataFrame(forecast, columns=names)
        if inp.future is not None:
            out.insert(0, "date", [d.isoformat() for d in inp.future[: self.horizon]])
        return out


def _as_refusal(e: Exception) -> Exception:
    """A ValueError the model raised on one input is that input's fault: a refusal naming the history."""
    if isinstance(e, ValueError) and not isinstance(e, Refused):
        return refuse(str(e), "history")
    return e
