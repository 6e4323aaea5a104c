"""The HTTP contract of the README on tiny local bundles: happy path, liveness/readiness, and every
client mistake answered with a 4xx that says what to fix (never a 500).

Startup with a ref that cannot be loaded raises `RuntimeError` naming the ref (the process exits
rather than serve part of its models); `/readyz` is 503 until startup has loaded every model.
"""

from __future__ import annotations

import ast
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from inference.tasks.forecast import ForecastPredictor
from service import Settings, create_app
from service.store import ModelStore
from tests.service.service_fixtures import START, H, L, N, assert_4xx, hourly_stamps, make_bundle, point_history


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {"m": make_bundle(root / "m"), "plain": make_bundle(root / "plain", calendar=False, seed=1)}


def post(client: TestClient, body: dict | str, name: str = "m"):
    if isinstance(body, str):
        return client.post(f"/v1/models/{name}/forecast", content=body, headers={"content-type": "application/json"})
    return client.post(f"/v1/models/{name}/forecast", json=body)


def test_liveness_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json() == {
        "ready": True,
        "models": {"m": "ready", "plain": "ready"},
        "detail": None,
    }


def test_not_ready_before_startup(bundles: dict[str, Path]) -> None:
    app = create_app(Settings(models=f"m={bundles['m']}"))
    c = TestClient(app)  # no `with`: lifespan has not run, nothing is loaded, yet the process is alive
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["models"] == {"m": "pending"}


def test_list_and_describe_models(client: TestClient) -> None:
    listed = client.get("/v1/models").json()["models"]
    assert [m["name"] for m in listed] == ["m", "plain"]
    info = client.get("/v1/models/m").json()
    assert info["version"] == "local" and info["task"] == "forecast" and info["model"] == "itransformer"
    assert (info["lookback"], info["horizon"], info["variates"]) == (L, H, ["a", "b", "c"])
    assert info["freq"] == "h" and info["uses_timestamps"] and info["step_seconds"] == 3600
    assert len(info["example_input"]["history"]) == L
    assert client.get("/v1/models/plain").json()["uses_timestamps"] is False
    assert client.get("/openapi.json").status_code == 200


def test_forecast_happy_path(client: TestClient) -> None:
    r = post(client, {"history": point_history(), "timestamps": hourly_stamps()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert np.asarray(body["forecast"]).shape == (H, N)
    assert body["timestamps"] == hourly_stamps(H, START + timedelta(hours=L))
    assert body["model"] == {"name": "m", "version": "local"}
    assert body["quantiles"] is None


def test_utc_timestamps_keep_their_offset(client: TestClient) -> None:
    stamps = [t + "Z" for t in hourly_stamps()]
    body = post(client, {"history": point_history(), "timestamps": stamps}).json()
    assert body["timestamps"][0] == (START + timedelta(hours=L)).isoformat() + "+00:00"


def test_example_input_is_a_valid_request(client: TestClient) -> None:
    example = client.get("/v1/models/m").json()["example_input"]
    assert post(client, example).status_code == 200


def test_forecast_equals_predictor(client: TestClient, bundles: dict[str, Path]) -> None:
    history, stamps = point_history(3), hourly_stamps()
    served = np.asarray(post(client, {"history": history, "timestamps": stamps}).json()["forecast"])
    direct = ForecastPredictor.load(bundles["m"]).predict(
        np.asarray(history)[None], [[datetime.fromisoformat(t) for t in stamps]]
    )[0]
    np.testing.assert_allclose(served, direct, rtol=1e-6, atol=1e-9)


def test_timestamps_optional_for_models_without_calendar(client: TestClient) -> None:
    body = post(client, {"history": point_history()}, name="plain").json()
    assert np.asarray(body["forecast"]).shape == (H, N) and body["timestamps"] is None
    with_ts = post(client, {"history": point_history(), "timestamps": hourly_stamps()}, name="plain").json()
    assert with_ts["timestamps"][0] == (START + timedelta(hours=L)).isoformat()


@pytest.mark.parametrize("rows", [3, L + 1, 0])
def test_wrong_history_length(client: TestClient, rows: int) -> None:
    history = (point_history() * 2)[:rows]
    assert_4xx(post(client, {"history": history, "timestamps": hourly_stamps()}), 422, "16 × 3", field="history")


def test_wrong_history_width(client: TestClient) -> None:
    history = point_history()
    history[5] = history[5][:2]
    detail = assert_4xx(post(client, {"history": history, "timestamps": hourly_stamps()}), 422, "16 × 3", "row 5")
    assert "2 values" in detail
    narrow = [row[:2] for row in point_history()]
    assert_4xx(
        post(client, {"history": narrow, "timestamps": hourly_stamps()}), 422, "16 × 3", "got 16 × 2", field="history"
    )


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_history(client: TestClient, bad: str) -> None:
    raw = json.dumps({"history": point_history(), "timestamps": hourly_stamps()}).replace(
        str(point_history()[2][1]), bad, 1
    )
    assert_4xx(post(client, raw), 422, "NaN or infinite", field="history.2.1")


def test_extreme_but_finite_history_is_a_4xx(client: TestClient) -> None:
    history = [[1e300] * N] * L
    assert_4xx(post(client, {"history": history, "timestamps": hourly_stamps()}), 422, "not finite", field="history")


def test_missing_timestamps(client: TestClient) -> None:
    assert_4xx(post(client, {"history": point_history()}), 422, "calendar features", "16 ISO-8601", field="timestamps")


def test_bad_timestamps(client: TestClient) -> None:
    stamps = hourly_stamps()
    stamps[5] = "yesterday at noon"
    assert_4xx(post(client, {"history": point_history(), "timestamps": stamps}), 422, "ISO-8601", field="timestamps.5")
    assert_4xx(post(client, {"history": point_history(), "timestamps": hourly_stamps(L - 1)}), 422, "16", "got 15")
    backwards = hourly_stamps()[::-1]
    assert_4xx(post(client, {"history": point_history(), "timestamps": backwards}), 422, "increasing")


def test_quantiles_from_point_model(client: TestClient) -> None:
    body = {"history": point_history(), "timestamps": hourly_stamps(), "quantiles": [0.1, 0.9]}
    assert_4xx(post(client, body), 422, "point forecasts", field="quantiles")


def test_unknown_model(client: TestClient) -> None:
    detail = assert_4xx(post(client, {"history": point_history()}, name="nope"), 404, "'nope'")
    assert "m, plain" in detail
    assert_4xx(client.get("/v1/models/nope"), 404, "m, plain")


def test_malformed_json_and_wrong_types(client: TestClient) -> None:
    assert_4xx(post(client, '{"history": [[1, 2'), 422, "not valid JSON", field=None)
    assert_4xx(post(client, {"timestamps": hourly_stamps()}), 422, "history is required", field="history")
    assert_4xx(post(client, {"history": [["x", 1, 2]] * L}), 422, "history.0.0", field="history.0.0")


def test_body_too_large(client: TestClient, store: ModelStore) -> None:
    big = json.dumps({"history": [[1.0, 2.0, 3.0]] * 200_000})  # ~3 MB > the 2 MiB default
    assert_4xx(post(client, big), 413, "too large")
    small = TestClient(create_app(Settings(max_body_bytes=1000), store=store))
    body = json.dumps({"history": point_history(), "timestamps": hourly_stamps()}).encode()
    assert_4xx(post(small, body.decode()), 413, "1000 bytes")
    # No Content-Length (chunked): counted while read.
    chunks = (body[i : i + 256] for i in range(0, len(body), 256))
    r = small.post("/v1/models/m/forecast", content=chunks, headers={"content-type": "application/json"})
    assert_4xx(r, 413, "1000 bytes")


def test_missing_path_fails_startup_naming_the_ref(tmp_path: Path) -> None:
    app = create_app(Settings(models=f"ghost={tmp_path / 'nowhere'}"))
    with pytest.raises(RuntimeError, match="ghost="), TestClient(app):
        pass


def test_settings_validate_refs(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("justaname", "a@", "=path", "x@y,x@z"):
        with pytest.raises(ValidationError):
            Settings(models=bad)
    monkeypatch.setenv("SEER_MODELS", "etth1@champion, local=/tmp/b")
    monkeypatch.setenv("SEER_PORT", "9000")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    s = Settings()
    assert [str(r) for r in s.model_refs()] == ["etth1@champion", "local=/tmp/b"]
    assert (s.port, s.tracking_uri, s.host) == (9000, "http://mlflow:5000", "127.0.0.1")


def test_loads_from_registry_alias(tmp_path: Path, bundles: dict[str, Path]) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)  # no global MLflow state: the service must use the URI it is given
    exp = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(exp)
    client.log_artifacts(run.info.run_id, str(bundles["m"]), "model/artifacts/bundle")
    client.create_registered_model("fc")
    mv = client.create_model_version("fc", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("fc", "champion", mv.version)

    with TestClient(create_app(Settings(models="fc@champion", tracking_uri=uri))) as c:
        info = c.get("/v1/models/fc").json()
        assert (info["version"], info["alias"]) == (str(mv.version), "champion")
        r = post(c, {"history": point_history(), "timestamps": hourly_stamps()}, name="fc")
        assert r.json()["model"] == {"name": "fc", "version": str(mv.version)}


def test_service_never_imports_training_or_cli() -> None:
    for path in Path(__file__).resolve().parents[2].joinpath("service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] in ("training", "seer") for n in names), (path, names)
