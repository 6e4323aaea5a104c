"""The model bundle: `config.json` + `weights.safetensors`, and the predictor built from it.

A bundle is everything needed to serve a model, with nothing pickled:
  config.json = {"format": 1, "name": registered name, "model": registry key, "task",
                 "model_config": {...}, "transform": {scaler, variates, calendar_freq, step_seconds,
                 lookback, horizon, dataset}, "example_input": {...}, "metrics": {...}}
  weights.safetensors = the state dict.
Training writes it; the MLflow pyfunc model and the FastAPI service both load it through
`load_predictor`, so serving applies exactly the scaling and calendar features training used.
"""

from __future__ import annotations

import json
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


@dataclass
class ForecastPredictor:
    """Original-unit forecasting around a bundle: scale → model → unscale.

    Shapes: B batch, L lookback, H horizon, N variates, F calendar features.
    """

    model: nn.Module
    meta: dict[str, Any]
    scaler: StandardScaler = field(init=False)

    def __post_init__(self) -> None:
        self.scaler = StandardScaler.from_dict(self.meta["transform"]["scaler"])

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
    def lookback(self) -> int:
        return int(self.meta["transform"]["lookback"])

    @property
    def horizon(self) -> int:
        return int(self.meta["transform"]["horizon"])

    @property
    def variates(self) -> list[str]:
        return list(self.meta["transform"]["variates"])

    @property
    def calendar_freq(self) -> str:
        return str(self.meta["transform"].get("calendar_freq") or "")

    @property
    def step_seconds(self) -> int:
        return int(self.meta["transform"]["step_seconds"])

    @property
    def uses_timestamps(self) -> bool:
        return bool(self.calendar_freq)

    @property
    def example_input(self) -> dict[str, Any]:
        return dict(self.meta.get("example_input") or {})

    def future_timestamps(self, last: datetime) -> list[datetime]:
        return future_dates(last, self.step_seconds, self.horizon)

    @torch.no_grad()
    def predict(self, history: np.ndarray, timestamps: list[list[datetime]] | None = None) -> np.ndarray:
        """history [B, L, N] in original units (+ B lists of L timestamps) -> forecast [B, H, N]."""
        history = np.asarray(history, dtype=np.float64)
        if history.ndim != 3 or history.shape[1:] != (self.lookback, len(self.variates)):
            raise ValueError(f"history must be [B, {self.lookback}, {len(self.variates)}], got {list(history.shape)}")
        if not np.isfinite(history).all():
            raise ValueError("history contains NaN or infinite values")
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
        device = next(self.model.parameters()).device
        y = self.model(  # [B, H, N] scaled
            x.to(device),
            None if marks is None else marks.to(device),
            None if future is None else future.to(device),
        )
        y_np = y.float().cpu().numpy().astype(np.float64)
        return self.scaler.inverse(y_np.reshape(-1, y_np.shape[-1])).reshape(y_np.shape)
