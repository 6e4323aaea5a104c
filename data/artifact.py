"""The model bundle: `config.json` + `weights.safetensors`, and the predictor built from it.

A bundle is everything needed to serve a model, with nothing pickled:
  config.json = {"format": 1, "name": registered name, "model": registry key, "task",
                 "model_config": {...}, "transform": {scaler, variates, calendar_freq, step_seconds,
                 lookback, horizon, dataset}, "example_input": {...}, "metrics": {...}}
  weights.safetensors = the state dict.
Two kinds of transform:
  standard (default): a global per-variate `scaler` fitted on the training data, a fixed list of
      `variates`, finite histories only; a point forecast of the trained `horizon`.
  instance (`"kind": "instance"`, foundation models such as Moirai-MoE): `scaler` null (the model
      scales each series itself from its observed context), `variates` null (any number of variates,
      up to `max_variates`, default 64), NaN = missing; with `"probabilistic": true` in the meta (or a
      model that has `quantiles`), quantile forecasts up to `max_horizon` (default: `horizon`).
Training writes it; the MLflow pyfunc model and the FastAPI service both load it through
`ForecastPredictor.load`, so serving applies exactly the scaling and calendar features training used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from data.calendar import future_dates, time_features
from data.scalers import StandardScaler

BUNDLE_FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


class BundleError(ValueError):
    """A bundle that is missing, malformed or does not match its model."""


def save_bundle(directory: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `config.json` (meta + format) and `weights.safetensors` into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for key in ("name", "model", "task", "model_config", "transform"):
        if key not in meta:
            raise BundleError(f"bundle meta lacks {key!r}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps({"format": BUNDLE_FORMAT, **meta}, indent=2))
    return directory


def find_bundle_dir(path: str | Path) -> Path:
    """The folder holding `config.json`: the path itself, or inside an MLflow model directory."""
    path = Path(path)
    for candidate in (path, path / "artifacts" / "bundle", path / "bundle"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    hits = sorted(path.rglob(CONFIG_FILE)) if path.is_dir() else []
    if hits:
        return hits[0].parent
    raise BundleError(f"no {CONFIG_FILE} found under {path}")


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from config + weights (strict: every tensor must match)."""
    from forecasters import get_spec  # the registry: models are found by name, never unpickled

    directory = find_bundle_dir(path)
    try:
        meta = json.loads((directory / CONFIG_FILE).read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{directory / CONFIG_FILE} is not valid JSON: {e}") from e
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"unsupported bundle format {meta.get('format')!r} (expected {BUNDLE_FORMAT})")
    model = get_spec(meta["model"]).build(meta["model_config"])
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise BundleError(f"{weights} is missing")
    try:
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except Exception as e:  # safetensors header errors, shape mismatches
        raise BundleError(f"cannot load weights from {weights}: {e}") from e
    return model.to(device).eval(), meta


DEFAULT_MAX_VARIATES = 64  # any-variate models: the most variates one request may hold (work bound)


@dataclass
class ForecastPredictor:
    """Original-unit forecasting around a bundle: scale → model → unscale.

    Standard bundles scale with the stored global scaler; instance-scaled bundles pass the history
    through as it is (the model scales each series itself). Shapes: B batch, L lookback, H horizon,
    N variates, F calendar features, Q quantile levels.
    """

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
        if meta["task"] != "forecast":
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
        return bool(flag) if flag is not None else callable(getattr(self.model, "quantiles", None))

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
        quantiles: Callable[..., torch.Tensor] = getattr(self.model, "quantiles")  # noqa: B009 (mypy: Module attrs)
        out = quantiles(x.to(device), q, num_samples=num_samples, generator=generator, horizon=h)  # [B, h, N, Q]
        y = out.float().cpu().numpy().astype(np.float64)
        if self.scaler is not None:  # per variate; an affine map with std > 0 keeps the quantiles' order
            y = (y * self.scaler.std[:, None] + self.scaler.mean[:, None]).astype(np.float64)
        return y
