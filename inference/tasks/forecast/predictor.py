"""The forecast task's predictor: original-unit forecasting around a bundle (scale → model → unscale).

See `inference.bundle` for the bundle's transform layout (standard: a global scaler and fixed variates;
instance: the model scales each series itself, any variates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.registry import ProbabilisticForecaster
from data.scalers import StandardScaler
from data.series.calendar import future_dates, time_features
from inference.bundle import BundleError, load_bundle

DEFAULT_MAX_VARIATES = 64  # any-variate models: the most variates one request may hold (work bound)


@dataclass
class ForecastPredictor:
    """Original-unit forecasting around a bundle: scale → model → unscale.

    Standard bundles scale with the stored global scaler; instance-scaled bundles pass the history
    through as it is (the model scales each series itself). Shapes: B batch, L lookback, H horizon,
    N variates, F calendar features, Q quantile levels.
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

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> ForecastPredictor:
        model, meta = load_bundle(path, device)
        if meta["task"] != cls.task:
            raise BundleError(f"{meta['name']} is a {meta['task']} model, not a forecaster")
        return cls(model=model, meta=meta)

    # Metadata the service exposes.
    @property
    def name(self) -> str:
        return str(self.meta["name"])

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

    def future_timestamps(
        self, last: datetime, horizon: int | None = None, step_seconds: int | None = None
    ) -> list[datetime]:
        """The `horizon` (default: the trained horizon) timestamps after `last`, `step_seconds` apart
        (default: the bundle's step; one of the two must be known)."""
        step = step_seconds if step_seconds is not None else self.step_seconds
        if step is None:
            raise ValueError(f"{self.name} has no step_seconds: pass the step to future_timestamps")
        return future_dates(last, step, self.horizon if horizon is None else horizon)

    def check_history(self, history: np.ndarray) -> np.ndarray:
        """history [B, L, N] as float64, or ValueError: L must be the lookback, N the model's variates
        (1..max_variates for any-variate models); NaN only where missing values are allowed, never a
        variate with no observed value, never ±inf."""
        history = np.asarray(history, dtype=np.float64)
        if self.any_variates:
            ok = history.ndim == 3 and history.shape[1] == self.lookback and 1 <= history.shape[2] <= self.max_variates
            if not ok:
                raise ValueError(
                    f"history must be [B, {self.lookback}, N] with 1 <= N <= {self.max_variates}, "
                    f"got {list(history.shape)}"
                )
        elif history.ndim != 3 or history.shape[1:] != (self.lookback, len(self.variates)):
            raise ValueError(f"history must be [B, {self.lookback}, {len(self.variates)}], got {list(history.shape)}")
        if not self.allows_missing:
            if not np.isfinite(history).all():
                raise ValueError("history contains NaN or infinite values")
            return history
        if np.isinf(history).any():
            raise ValueError("history contains infinite values (NaN marks a missing value; inf is not allowed)")
        empty = np.argwhere(np.isnan(history).all(axis=1))  # [k, 2]: (batch row, variate)
        if len(empty):
            b, v = (int(i) for i in empty[0])
            raise ValueError(f"history is all missing (NaN) for variate {v} (batch row {b}): send one value at least")
        return history

    def _check_horizon(self, horizon: int | None) -> int:
        horizon = self.horizon if horizon is None else int(horizon)
        if not 1 <= horizon <= self.max_horizon:
            raise ValueError(f"horizon must be in [1, {self.max_horizon}], got {horizon}")
        return horizon

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def predict(
        self, history: np.ndarray, timestamps: list[list[datetime]] | None = None, horizon: int | None = None
    ) -> np.ndarray:
        """history [B, L, N] in original units (+ B lists of L timestamps) -> point forecast [B, h, N],
        h = `horizon` (default and most: the trained horizon H; the model forecasts H and the first h
        steps are returned)."""
        history = self.check_history(history)
        h = self.horizon if horizon is None else int(horizon)
        if not 1 <= h <= self.horizon:
            hint = f"; quantile forecasts reach {self.max_horizon}" if self.max_horizon > self.horizon else ""
            raise ValueError(f"point forecasts cover horizon 1..{self.horizon}, got {h}{hint}")
        if self.scaler is None:
            x = torch.from_numpy(history.astype(np.float32))
        else:
            x = torch.from_numpy(self.scaler.transform(history.reshape(-1, history.shape[-1])).reshape(history.shape))
        marks = future = None
        if self.uses_timestamps:
            if timestamps is None or len(timestamps) != history.shape[0]:
                raise ValueError("this model uses calendar features: timestamps are required for every history")
            # One call for the whole batch: per-request calls dominated a batched forecast's CPU time.
            # The horizon's calendar follows the last timestamp at the training data's step.
            flat = [t for ts in timestamps for t in (*ts, *self.future_timestamps(ts[-1]))]
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
        return y_np if horizon is None else y_np[:, :h]

    @torch.no_grad()
    def predict_quantiles(
        self,
        history: np.ndarray,
        levels: Sequence[float],
        horizon: int | None = None,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """history [B, L, N] in original units (NaN = missing) -> quantiles [B, h, N, Q] in original units,
        h = `horizon` (default H, at most `max_horizon`), empirical quantiles over `num_samples` sample
        paths (default: the model's). The draws come from a generator seeded with `seed`, so the same
        call gives the same numbers; they depend on the whole batch, so call with B = 1 for answers that
        do not depend on other rows."""
        if not self.probabilistic:
            raise ValueError(f"{self.name} gives point forecasts only; it has no quantiles")
        q = [float(level) for level in levels]
        if not q or not all(0.0 < level < 1.0 for level in q):
            raise ValueError(f"quantile levels must be a non-empty list inside (0, 1), got {q}")
        history = self.check_history(history)
        h = self._check_horizon(horizon)
        if self.scaler is None:
            x = torch.from_numpy(history.astype(np.float32))
        else:  # a probabilistic model on a global scaler
            x = torch.from_numpy(self.scaler.transform(history.reshape(-1, history.shape[-1])).reshape(history.shape))
        device = self._device()
        generator = torch.Generator(device=device).manual_seed(seed)
        model = self.model
        if not isinstance(model, ProbabilisticForecaster):
            raise BundleError(f"{self.name}: the bundle says probabilistic, but {type(model).__name__} has no quantiles")
        out = model.quantiles(x.to(device), q, num_samples=num_samples, generator=generator, horizon=h)  # [B, h, N, Q]
        y = out.float().cpu().numpy().astype(np.float64)
        if self.scaler is not None:  # per variate; an affine map with std > 0 keeps the quantiles' order
            y = (y * self.scaler.std[:, None] + self.scaler.mean[:, None]).astype(np.float64)
        return y

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
        timestamps = [[datetime.fromisoformat(str(s)) for s in stamps]] if stamps is not None else None
        forecast = self.predict(history[None], timestamps)[0]  # [H, N]
        out = pd.DataFrame(forecast, columns=names)
        if timestamps is not None:
            out.insert(0, "date", [d.isoformat() for d in self.future_timestamps(timestamps[0][-1])])
        return out
