"""The models a service process serves: resolved from refs, rebuilt from config + weights, warmed up.

Registry refs (`NAME@ALIAS`) are resolved to a version through the MLflow client, the version's
artifacts are downloaded to a temporary folder, and the bundle inside is loaded by the predictor of its
task (`inference.predictor.load_predictor`: safetensors + JSON; nothing is unpickled) and warmed up
(`Predictor.warm_up`). The temporary folder is removed once the weights are in memory. Local refs
(`NAME=PATH`) load the bundle in place, version "local". A store made with `tasks` refuses a bundle
of any other task (the service has no endpoint for it).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from inference.predictor import Predictor, load_predictor
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
    predictor: Predictor


class ModelStore:
    """Name -> LoadedModel, plus a status per expected model for `/readyz`.

    Loading is blocking (call it from a worker thread); reads are plain dict lookups. A failed load
    raises `RuntimeError` naming the ref, so a misconfigured service fails at startup, not per request.
    """

    def __init__(
        self, tracking_uri: str | None = None, device: str = "cpu", tasks: Collection[str] | None = None
    ) -> None:
        self.tracking_uri = tracking_uri
        self.device = device
        self.tasks = None if tasks is None else tuple(tasks)  # None: a bundle of any task loads
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
        `LoadedModel` they were validated against (see `service.task.Job`), so the ones in
        flight finish on the old version and no request mixes the two."""
        with self._lock:
            self._models[model.name] = model
            self._status[model.name] = READY

    def load(self, ref: ModelRef) -> LoadedModel:
        """Load, warm up and add one model; `RuntimeError` naming the ref if anything fails."""
        self.expect([ref])
        try:
            if ref.alias is not None or ref.version is not None:
                model = self._load_registered(ref)  # warmed up in `build`
            else:
                model = LoadedModel(ref.name, "local", None, str(ref.path), self.predictor(str(ref.path)))
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
        """The version `NAME@ALIAS` points at now (a `NAME/VERSION` ref: that version)."""
        if ref.version is not None:
            return ref.version
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
        return LoadedModel(ref.name, version, ref.alias, f"models:/{ref.name}/{version}", self.predictor(local))

    def predictor(self, path: str) -> Predictor:
        """The bundle under `path` rebuilt by its task's predictor, of a task this store serves, warmed up."""
        predictor = load_predictor(path, device=self.device)
        if self.tasks is not None and predictor.task not in self.tasks:
            served = ", ".join(self.tasks)
            raise ValueError(f"{predictor.name} is a {predictor.task} model; this service serves {served} models only")
        predictor.warm_up()
        return predictor
