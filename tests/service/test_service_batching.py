"""Issue 7 on tiny local bundles: the micro-batcher (same numbers as one at a time; a bad request never
fails its batch-mates), timeouts and back-pressure, bearer auth, per-model limits, Prometheus metrics,
request ids and the JSON access log. Concurrency comes from `asyncio.gather` over the ASGI app in
process; nothing here is timed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from inference.tasks.forecast import ForecastPredictor
from service import Settings, create_app
from service.settings import parse_model_ref
from service.store import LoadedModel, ModelStore
from tests.service.service_fixtures import (
    FORECAST,
    START,
    H,
    L,
    N,
    batch_stats,
    hourly_stamps,
    make_bundle,
    point_history,
    post_all,
)

KEY = "k" * 24


@dataclass
class FaultyPredictor(ForecastPredictor):
    """Raises on any batch holding a history whose first value is 12345 (a model that chokes on one input).

    Overrides the forward pass the service's batches run (`point_forecast`, behind validation)."""

    delay_s: float = 0.0

    def point_forecast(self, history: np.ndarray, timestamps: Any = None, futures: Any = None) -> np.ndarray:
        time.sleep(self.delay_s)
        if np.any(np.asarray(history)[:, 0, 0] == 12345.0):
            raise ValueError("the model cannot take a 12345")
        if np.any(np.asarray(history)[:, 0, 0] == 666.0):
            raise RuntimeError("a bug in the model code")
        return super().point_forecast(history, timestamps, futures)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    root = tmp_path_factory.mktemp("bundles")
    s = ModelStore()
    s.load(parse_model_ref(f"m={make_bundle(root / 'm')}"))
    s.load(parse_model_ref(f"plain={make_bundle(root / 'plain', calendar=False, seed=1)}"))
    base = s.get("m")
    assert base is not None
    faulty = FaultyPredictor(model=base.predictor.model, meta=base.predictor.meta)
    s.add(LoadedModel("faulty", "local", None, "test", faulty))
    slow = FaultyPredictor(model=base.predictor.model, meta=base.predictor.meta, delay_s=0.5)
    s.add(LoadedModel("slow", "local", None, "test", slow))
    return s


def app_for(store: ModelStore, **settings: Any) -> Any:
    return create_app(Settings(**settings), store=store)


def body(seed: int = 0, **extra: Any) -> dict[str, Any]:
    return {"history": point_history(seed), "timestamps": hourly_stamps(), **extra}


def single(store: ModelStore, name: str, seed: int) -> np.ndarray:
    model = store.get(name)
    assert model is not None
    stamps = [[datetime.fromisoformat(t) for t in hourly_stamps()]]
    return model.predictor.predict(np.asarray(point_history(seed))[None], stamps)[0]


def test_batched_equals_single(store: ModelStore) -> None:
    app = app_for(store, max_batch_size=8, max_wait_ms=500)  # a batch starts once 8 are queued
    responses = asyncio.run(post_all(app, [("m", body(seed)) for seed in range(8)]))
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    count, total = batch_stats(app, "m")
    assert total == 8 and count < 8, (count, total)  # they shared forward passes
    for seed, r in enumerate(responses):
        got = np.asarray(r.json()["forecast"])
        assert got.shape == (H, N)
        np.testing.assert_allclose(got, single(store, "m", seed), rtol=1e-5, atol=1e-5)
        assert r.json()["timestamps"] == hourly_stamps(H, START + timedelta(hours=L))


def test_bad_requests_in_a_busy_batch_fail_alone(store: ModelStore) -> None:
    """Overflow (passes validation, fails after the forward pass), a wrong shape and a NaN (refused before
    joining) sit among good requests: each bad one gets its own 422, every good one its forecast."""
    app = app_for(store, max_batch_size=8, max_wait_ms=300)
    nan = json.dumps(body(3)).replace(str(point_history(3)[2][1]), "NaN", 1)
    requests = [("m", body(0)), ("m", {"history": [[1e300] * N] * L, "timestamps": hourly_stamps()})]
    requests += [("m", body(1)), ("m", {"history": point_history()[:3], "timestamps": hourly_stamps()}), ("m", nan)]
    requests += [("m", body(2)), ("m", body(4))]
    responses = asyncio.run(post_all(app, requests))
    codes = [r.status_code for r in responses]
    assert codes == [200, 422, 200, 422, 422, 200, 200], [r.text for r in responses]
    assert responses[1].json()["field"] == "history" and "not finite" in responses[1].json()["detail"]
    assert "16 × 3" in responses[3].json()["detail"] and responses[4].json()["field"] == "history.2.1"
    count, total = batch_stats(app, "m")
    assert total == 5 and count < 5  # the overflow request shared a forward pass with good ones
    for i, seed in [(0, 0), (2, 1), (5, 2), (6, 4)]:
        np.testing.assert_allclose(responses[i].json()["forecast"], single(store, "m", seed), rtol=1e-5, atol=1e-5)


def test_batch_that_raises_is_retried_one_by_one(store: ModelStore) -> None:
    app = app_for(store, max_batch_size=4, max_wait_ms=300)
    poison = body(5)
    poison["history"][0][0] = 12345.0
    bug = body(6)
    bug["history"][0][0] = 666.0
    responses = asyncio.run(
        post_all(app, [("faulty", body(0)), ("faulty", poison), ("faulty", body(1)), ("faulty", bug)])
    )
    assert [r.status_code for r in responses] == [200, 422, 200, 500], [r.text for r in responses]
    assert "12345" in responses[1].json()["detail"]
    rid = responses[3].headers["x-request-id"]
    assert responses[3].json()["request_id"] == rid and rid in responses[3].json()["detail"]
    np.testing.assert_allclose(responses[0].json()["forecast"], single(store, "m", 0), rtol=1e-5, atol=1e-5)


def test_timeout_is_a_504(store: ModelStore) -> None:
    app = app_for(store, request_timeout_s=0.1, max_wait_ms=0)
    (r,) = asyncio.run(post_all(app, [("slow", body())]))
    assert r.status_code == 504 and "SEER_REQUEST_TIMEOUT_S" in r.json()["detail"], r.text
    (ok,) = asyncio.run(post_all(app, [("m", body())]))
    assert ok.status_code == 200


def test_full_queue_is_a_503(store: ModelStore) -> None:
    app = app_for(store, max_queue=1, max_batch_size=8, max_wait_ms=300)
    responses = asyncio.run(post_all(app, [("m", body(0)), ("m", body(1)), ("m", body(2))]))
    assert sorted(r.status_code for r in responses) == [200, 503, 503]
    busy = [r for r in responses if r.status_code == 503]
    assert all(r.headers["retry-after"] == "1" and "already queued" in r.json()["detail"] for r in busy)


def test_auth(store: ModelStore) -> None:
    client = TestClient(app_for(store, api_key=KEY))
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert client.get(path).status_code in (200, 503), path  # open (readyz: no SEER_MODELS here)
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": f"Basic {KEY}"}):
        r = client.get("/v1/models", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
        assert r.json()["field"] == "Authorization" and "Bearer <SEER_API_KEY>" in r.json()["detail"]
    # Refused before the body is read: a malformed body without a token is a 401, not a 422.
    assert client.post(FORECAST.format("m"), content=b"{not json").status_code == 401
    auth = {"Authorization": f"Bearer {KEY}"}
    assert client.get("/v1/models", headers=auth).status_code == 200
    assert client.post(FORECAST.format("m"), json=body(), headers=auth).status_code == 200
    assert client.get("/v1/models/nope", headers=auth).status_code == 404
    security = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert security["HTTPBearer"]["scheme"] == "bearer"
    # Auth off (the default): no token needed.
    assert TestClient(app_for(store)).post(FORECAST.format("m"), json=body()).status_code == 200


def test_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in (
        {"max_batch_size": 0},
        {"max_wait_ms": -1},
        {"request_timeout_s": 0},
        {"max_queue": 0},
        {"api_key": "short"},
        {"api_key": "has spaces in the middle of it"},
        {"request_timeout_s": 0.001, "max_wait_ms": 5},
    ):
        with pytest.raises(ValidationError):
            Settings(**bad)
    monkeypatch.setenv("SEER_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("SEER_MAX_WAIT_MS", "3.5")
    monkeypatch.setenv("SEER_REQUEST_TIMEOUT_S", "2")
    monkeypatch.setenv("SEER_API_KEY", KEY)
    s = Settings()
    assert (s.max_batch_size, s.max_wait_ms, s.request_timeout_s, s.key) == (16, 3.5, 2.0, KEY)
    monkeypatch.setenv("SEER_MAX_BATCH_SIZE", "lots")
    with pytest.raises(ValidationError, match="max_batch_size"):
        Settings()


def test_limits_from_the_model(store: ModelStore) -> None:
    client = TestClient(app_for(store))
    r = client.post(FORECAST.format("m"), json=body(horizon=3))
    assert r.status_code == 200 and len(r.json()["forecast"]) == 3 and len(r.json()["timestamps"]) == 3
    np.testing.assert_allclose(r.json()["forecast"], single(store, "m", 0)[:3], rtol=1e-5, atol=1e-5)
    r = client.post(FORECAST.format("m"), json=body(horizon=H + 1))
    assert r.status_code == 422 and r.json()["field"] == "horizon" and f"at most {H}" in r.json()["detail"]
    assert client.post(FORECAST.format("m"), json=body(horizon=0)).json()["field"] == "horizon"
    stamps = hourly_stamps()
    stamps[0] = "2024-01-01T00:00:00" + "0" * 100
    r = client.post(FORECAST.format("m"), json={"history": point_history(), "timestamps": stamps})
    assert r.status_code == 422 and r.json()["field"] == "timestamps.0"
    wide = [[*row, 1.0] for row in point_history()]
    assert (
        "16 × 3"
        in client.post(FORECAST.format("m"), json={"history": wide, "timestamps": hourly_stamps()}).json()["detail"]
    )


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_requests_batches_and_models(store: ModelStore, tmp_path: Path) -> None:
    app = app_for(store, max_wait_ms=0)
    client = TestClient(app)
    for _ in range(3):
        assert client.post(FORECAST.format("m"), json=body()).status_code == 200
    assert client.post(FORECAST.format("m"), json={"history": []}).status_code == 422
    assert client.post(FORECAST.format("no-such-model-0"), json=body()).status_code == 404
    assert client.post(FORECAST.format("no-such-model-1"), json=body()).status_code == 404
    with pytest.raises(RuntimeError):
        store.load(parse_model_ref(f"broken={tmp_path / 'missing'}"))
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    fc = {"model": "m", "endpoint": "/v1/models/{name}/forecast", "method": "POST"}

    def value(name: str, **labels: str) -> float:
        return got.get((name, frozenset(labels.items())), 0.0)

    assert value("seer_requests_total", **fc, status="200") == 3
    assert value("seer_requests_total", **fc, status="422") == 1
    assert value("seer_request_duration_seconds_count", **fc) == 4
    # Unknown names share one label value: a client cannot mint new time series.
    assert value("seer_requests_total", **{**fc, "model": "unknown"}, status="404") == 2
    assert value("seer_batch_size_count", model="m") == 3 and value("seer_batch_size_sum", model="m") == 3
    assert value("seer_model_info", model="m", version="local", alias="") == 1
    assert value("seer_model_ready", model="broken") == 0 and value("seer_model_ready", model="m") == 1
    assert value("seer_model_load_failures_total", model="broken") == 1
    assert value("seer_queue_depth", model="m") == 0


def test_request_id_and_json_access_log(store: ModelStore, caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(app_for(store))
    with caplog.at_level(logging.INFO, logger="service.access"):
        r = client.post(FORECAST.format("m"), json={"history": []}, headers={"X-Request-ID": "abc-123"})
        generated = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert r.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32  # replaced: not a plain token
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "service.access"]
    first = next(line for line in lines if line["request_id"] == "abc-123")
    assert (first["status"], first["model"], first["endpoint"]) == (422, "m", "/v1/models/{name}/forecast")
    assert "16 × 3" in first["error"] and first["duration_ms"] >= 0
    assert any(line["request_id"] == generated.headers["x-request-id"] for line in lines)
