"""The models a service process serves: resolved from refs, rebuilt from config + weights, warmed up.

Registry refs (`NAME@ALIAS`) are resolved to a version through the MLflow client, the version's
artifacts are downloaded to a temporary folder, and the bundle inside is loaded with
`ForecastPredictor.load` (safetensors + JSON; nothing is unpickled). The temporary folder is removed
once the weights are in memory. Local refs (`NAME=PATH`) load the bundle in place, version "local".
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from inference.tasks.forecast import ForecastPredictor
from service.settings import ModelRef

log = logging.getLogger(__name__)

PENDING, READY = "pending", "ready"


@dataclass(frozen=True)
class LoadedModel:
    """A warmed predictor and where it came from."""

    name: str  # the name it is served under
    version: str  # registry version, or "local"
    alias: str | None
    source: str  # models:/NAME@ALIAS (resolved to models:/NAME/VERSION) or the local path
    predictor: ForecastPredictor


def warm_up(predictor: ForecastPredictor) -> None:
    """One prediction on the bundle's example input (so the first request is not the slow one), which also
    validates the model: the example must fit its lookback × variates, the forecast must be horizon ×
    variates and finite. Probabilistic models run the path the service uses (seeded quantiles, whose order
    must follow the levels). Raises ValueError otherwise (a hot reload then refuses the version)."""
    example = predictor.example_input
    L, H = predictor.lookback, predictor.horizon
    history = example.get("history")
    if history is None:  # a synthetic window: at the scaler's mean, or a ramp for instance-scaled models
        if predictor.scaler is None:
            history = np.linspace(0.0, 1.0, L)[:, None].repeat(max(1, len(predictor.variates)), axis=1)
        else:
            history = np.broadcast_to(predictor.scaler.mean, (L, len(predictor.variates)))
    x = np.asarray(history, dtype=np.float64)  # null entries (missing values) become NaN
    N = x.shape[1] if predictor.any_variates and x.ndim == 2 else len(predictor.variates)
    if x.shape != (L, N) or not 1 <= N <= predictor.max_variates:
        want = f"{L} × N, 1 <= N <= {predictor.max_variates}" if predictor.any_variates else f"{L} × {N}"
        raise ValueError(f"example input is {' × '.join(map(str, x.shape))}, the metadata says {want}")
    if predictor.probabilistic:
        _warm_up_quantiles(predictor, x)
        return
    stamps: list[datetime] | None = None
    if predictor.uses_timestamps:
        raw = example.get("timestamps")
        if raw:
            stamps = [datetime.fromisoformat(t) for t in raw]
        else:
            step = timedelta(seconds=predictor.step_seconds or 0)
            stamps = [datetime(2020, 1, 1) + step * k for k in range(L)]
    out = np.asarray(predictor.predict(x[None], None if stamps is None else [stamps]))
    if out.shape != (1, H, N):
        raise ValueError(f"warm-up forecast has shape {out.shape}, the metadata says (1, {H}, {N})")
    if not np.isfinite(out).all():
        raise ValueError("warm-up forecast on the example input is not finite")


def _warm_up_quantiles(predictor: ForecastPredictor, x: np.ndarray) -> None:
    """Quantiles at the default horizon: shape, finiteness, order; and max_horizon within the model's own."""
    bound = getattr(predictor.model, "max_horizon", None)
    if isinstance(bound, int) and predictor.max_horizon > bound:
        raise ValueError(f"the metadata's max_horizon {predictor.max_horizon} exceeds the model's {bound}")
    levels = [0.1, 0.5, 0.9]
    H, N = predictor.horizon, x.shape[1]
    out = np.asarray(predictor.predict_quantiles(x[None], levels))
    if out.shape != (1, H, N, len(levels)):
        raise ValueError(f"warm-up quantiles have shape {out.shape}, the metadata says (1, {H}, {N}, {len(levels)})")
    if not np.isfinite(out).all():
        raise ValueError("warm-up quantiles on the example input are not finite")
    if (np.diff(out, axis=-1) < 0).any():
        raise ValueError("warm-up quantiles on the example input decrease with the level")


class ModelStore:
    """Name -> LoadedModel, plus a status per expected model for `/readyz`.

    Loading is blocking (call it from a worker thread); reads are plain dict lookups. A failed load
    raises `RuntimeError` naming the ref, so a misconfigured service fails at startup, not per request.
    """

    def __init__(self, tracking_uri: str | None = None, device: str = "cpu") -> None:
        self.tracking_uri = tracking_uri
        self.device = device
        self._models: dict[str, LoadedModel] = {}
        self._status: dict[str, str] = {}
        self._load_failures: dict[str, int] = {}
        self._lock = threading.Lock()

    # Reads (request path).
    def get(self, name: str) -> LoadedModel | None:
        return self._models.get(name)

    def names(self) -> list[str]:
        return sorted(self._models)

    def models(self) -> list[LoadedModel]:
        return [self._models[n] for n in self.names()]

    def status(self) -> dict[str, str]:
        """Per model: "ready", "pending" (not loaded yet) or "failed: <why>"."""
        with self._lock:
            return dict(self._status)

    def load_failures(self) -> dict[str, int]:
        """Per model name: how many loads have failed in this process (`/metrics`)."""
        with self._lock:
            return dict(self._load_failures)

    @property
    def ready(self) -> bool:
        status = self.status()
        return bool(status) and all(s == READY for s in status.values())

    # Writes (startup).
    def expect(self, refs: list[ModelRef]) -> None:
        """Record the models this process should serve, so readiness is false until each one loads."""
        with self._lock:
            for ref in refs:
                self._status.setdefault(ref.name, PENDING)

    def add(self, model: LoadedModel) -> None:
        """Serve `model` under its name: one reference replaced, so a hot swap is atomic. Requests hold the
        `LoadedModel` they were validated against (see `service.forecast.ForecastJob`), so the ones in
        flight finish on the old version and no request mixes the two."""
        with self._lock:
            self._models[model.name] = model
            self._status[model.name] = READY

    def load(self, ref: ModelRef) -> LoadedModel:
        """Load, warm up and add one model; `RuntimeError` naming the ref if anything fails."""
        self.expect([ref])
        try:
            if ref.alias is not None:
                model = self._load_registered(ref)  # warmed up in `build`
            else:
                predictor = ForecastPredictor.load(str(ref.path), device=self.device)
                warm_up(predictor)
                model = LoadedModel(ref.name, "local", None, str(ref.path), predictor)
        except Exception as e:
            with self._lock:
                self._status[ref.name] = f"failed: {e}"
                self._load_failures[ref.name] = self._load_failures.get(ref.name, 0) + 1
            raise RuntimeError(f"cannot load model ref {str(ref)!r} ({ref.source}): {e}") from e
        self.add(model)
        log.info("loaded %s version %s from %s", model.name, model.version, model.source)
        return model

    def load_all(self, refs: list[ModelRef]) -> None:
        """Load every ref in order; the first failure raises (the service should not start half-configured)."""
        self.expect(refs)
        for ref in refs:
            self.load(ref)

    def _load_registered(self, ref: ModelRef) -> LoadedModel:
        version = self.resolve(ref)
        with tempfile.TemporaryDirectory(prefix="seer-model-") as tmp:
            # weights are in memory once `build` returns; the folder can go
            return self.build(ref, version, self.download(ref, version, tmp))

    # The three steps of loading a registry ref, apart so that a hot reload can tell an unreachable
    # tracking server (resolve, download: retry later) from a broken version (build: refuse it).
    @property
    def registry_uri(self) -> str | None:
        # The registry is the tracking server unless MLFLOW_REGISTRY_URI says otherwise (MLflow's own rule).
        return os.environ.get("MLFLOW_REGISTRY_URI") or self.tracking_uri

    def client(self) -> Any:
        import mlflow  # lazily: local-only deployments and tests do not pay for the import

        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def resolve(self, ref: ModelRef) -> str:
        """The version `NAME@ALIAS` points at now."""
        return str(self.client().get_model_version_by_alias(ref.name, str(ref.alias)).version)

    def download(self, ref: ModelRef, version: str, dst: str) -> str:
        """The version's artifacts, downloaded under `dst`; returns the local path."""
        import mlflow

        # Resolve the version's artifact location with this client: `download_artifacts("models:/...")`
        # ignores the URIs it is given and looks the name up in MLflow's process-global registry.
        location = self.client().get_model_version_download_uri(ref.name, version)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=dst, tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
        )
        return str(local)

    def build(self, ref: ModelRef, version: str, local: str) -> LoadedModel:
        """Rebuild the model from config + weights under `local` and warm it up (validation included)."""
        predictor = ForecastPredictor.load(local, device=self.device)
        warm_up(predictor)
        return LoadedModel(ref.name, version, ref.alias, f"models:/{ref.name}/{version}", predictor)
