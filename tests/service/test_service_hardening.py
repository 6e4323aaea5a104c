"""Issue 14: what a hostile client found, each reproduced over HTTP (in process, ASGI) on tiny bundles.

Unbounded `/metrics` label values; a request that crashed its batch (timestamps past year 9999); one
allowed but expensive request that blocked a model for everyone, and its work going on after its client
had given up; timestamps at the wrong step; quantile levels that round to 0 or 1; loose parsing; no
content-type check and no word on CORS; a rejected API key printed; `/readyz` showing internal error text
to anyone; OpenAPI examples that fit no model. Nothing here is timed: the lanes are checked by the order
answers arrive in, cancellation by how much of the work ran.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from inference.tasks.forecast import ForecastPredictor
from service import Settings, create_app
from service.lanes import HEAVY
from service.settings import parse_model_ref
from service.store import LoadedModel, ModelStore
from tests.inference.forecast_bundles import P_HMAX, P_L, any_history, make_moirai_bundle
from tests.service.service_fixtures import FORECAST, L, assert_4xx, hourly_stamps, make_bundle, point_history, post_all

SLEEP_S = 0.02  # per top-level module call of the "slow" model: work that takes long and can be counted


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "m": make_bundle(root / "m"),
        "plain": make_bundle(root / "plain", calendar=False, seed=1),
        "moirai": make_moirai_bundle(root / "moirai"),
    }


@pytest.fixture(scope="module")
def slow_store(bundles: dict[str, Path]) -> tuple[ModelStore, list[int]]:
    """The served models plus `slow`: the probabilistic bundle with a sleep in each call of the model's
    parts (its top-level modules), each call counted."""
    store = ModelStore()
    store.load_all([parse_model_ref(f"{name}={path}") for name, path in bundles.items()])
    calls: list[int] = []
    slow = ForecastPredictor.load(bundles["moirai"])

    def hook(module: Any, args: Any) -> None:
        calls.append(1)
        time.sleep(SLEEP_S)

    for child in slow.model.children():
        child.register_forward_pre_hook(hook)
    store.add(LoadedModel("slow", "local", None, "test", slow))
    return store, calls


def heavy_body() -> dict[str, Any]:
    return {"history": any_history(3), "horizon": P_HMAX}  # cost 6.4 reference requests: the heavy lane


def light_body(seed: int = 0) -> dict[str, Any]:
    return {"history": any_history(1, seed=seed)}  # cost 0.6: the light lane


# 1. Metrics labels are bounded.


def series(text: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_random_methods_and_paths_mint_no_label_values(store: ModelStore) -> None:
    """~35,000 random method names made /metrics 108 MB: every method was a label value, even on 401/405."""
    client = TestClient(create_app(Settings(api_key="k" * 24), store=store))
    rng = random.Random(0)

    def noise(n: int) -> None:
        for _ in range(n):
            method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 12)))
            path = rng.choice(["/v1/models/m/forecast", "/healthz", f"/x/{rng.random()}", "/admin/reload"])
            client.request(method, path)

    noise(50)
    client.get("/metrics")  # the scrape's own series
    before = client.get("/metrics").text
    noise(2000)
    after = client.get("/metrics").text
    assert series(after) == series(before)  # no new time series, whatever the traffic
    assert len(after) < len(before) + 2000  # only counts grew
    assert 'method="other"' in after


# 2. A request's failure is its own.


def test_timestamps_past_9999_are_a_422_and_spoil_no_batch(store: ModelStore) -> None:
    """Future timestamps past year 9999 crashed inside the batch: a 500 for every batch-mate (probabilistic)."""
    app = create_app(Settings(max_batch_size=8, max_wait_ms=300), store=store)
    late = [(datetime(9999, 12, 31, 23 - L) + timedelta(hours=k)).isoformat() for k in range(L)]
    step = timedelta(days=365 * 300)  # no fixed step: the request's own, enormous
    huge = [(datetime(1, 1, 1) + step * k).isoformat() for k in range(P_L)]
    good_m = {"history": point_history(), "timestamps": hourly_stamps()}
    requests = [("m", good_m), ("m", {"history": point_history(), "timestamps": late}), ("m", good_m)]
    requests += [("moirai", light_body()), ("moirai", {"history": any_history(1), "timestamps": huge})]
    requests += [("moirai", light_body(1))]
    responses = asyncio.run(post_all(app, requests))
    assert [r.status_code for r in responses] == [200, 422, 200, 200, 422, 200], [r.text for r in responses]
    for bad in (responses[1], responses[4]):
        assert bad.json()["field"] == "timestamps" and "9999-12-31" in bad.json()["detail"]


# 3. The work of one request is bounded, stopped when nobody waits, and does not hold the light lane.


def test_a_request_past_the_cost_bound_is_a_413(client: TestClient) -> None:
    info = client.get("/v1/models/moirai").json()
    assert info["max_cost"] > 1.0 and client.get("/v1/models/m").json()["max_cost"] == 1.0
    r = client.post(FORECAST.format("moirai"), json={"history": any_history(64), "horizon": P_HMAX})
    detail = assert_4xx(r, 413, "64 variates over horizon 64", "max_cost", "several requests", field="history")
    assert "too much work" in detail
    # Each bound alone is still served: the widest history at the trained horizon, the longest horizon narrow.
    assert client.post(FORECAST.format("moirai"), json={"history": any_history(64)}).status_code == 200
    assert (
        client.post(FORECAST.format("moirai"), json={"history": any_history(1), "horizon": P_HMAX}).status_code == 200
    )


async def _until_idle(app: Any, name: str) -> None:
    batcher = app.state.batchers.get(name, HEAVY)
    deadline = time.monotonic() + 60
    while batcher.busy:
        assert time.monotonic() < deadline, "the heavy lane never finished its batch"
        await asyncio.sleep(0.01)


def _full_run(slow_store: tuple[ModelStore, list[int]]) -> int:
    store, calls = slow_store
    app = create_app(Settings(max_wait_ms=0), store=store)
    start = len(calls)
    (r,) = asyncio.run(post_all(app, [("slow", heavy_body())]))
    assert r.status_code == 200, r.text
    return len(calls) - start


def test_work_stops_when_its_request_times_out(slow_store: tuple[ModelStore, list[int]]) -> None:
    """A 504 at 0.1 s used to leave its forecast running to the end; it stops at the next layer call."""
    full = _full_run(slow_store)
    store, calls = slow_store
    app = create_app(Settings(max_wait_ms=0, request_timeout_s=0.1), store=store)

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.post(FORECAST.format("slow"), json=heavy_body())
            await _until_idle(app, "slow")
            return r

    start = len(calls)
    r = asyncio.run(scenario())
    assert r.status_code == 504, r.text
    assert len(calls) - start < full / 2, (len(calls) - start, full)


def test_work_stops_when_its_client_disconnects(slow_store: tuple[ModelStore, list[int]]) -> None:
    full = _full_run(slow_store)
    store, calls = slow_store
    app = create_app(Settings(max_wait_ms=0), store=store)
    body = httpx.Request("POST", "http://test", json=heavy_body()).read()
    sent: list[dict[str, Any]] = []

    async def scenario() -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(0.1)  # the client hangs up while its forecast runs
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": FORECAST.format("slow"),
            "raw_path": FORECAST.format("slow").encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1),
            "server": ("test", 80),
        }
        await app(scope, receive, send)
        await _until_idle(app, "slow")

    start = len(calls)
    asyncio.run(scenario())
    assert sent[0]["status"] == 499  # nobody reads it; the access log says what happened
    assert len(calls) - start < full / 2, (len(calls) - start, full)


def test_light_requests_are_not_held_behind_a_heavy_one(slow_store: tuple[ModelStore, list[int]]) -> None:
    """One expensive request kept every request to its model waiting (504s for ~45 s). Now it runs in the
    model's heavy lane and hands the model to light batches at its checkpoints: light requests sent after
    it started are all answered before it is."""
    store, calls = slow_store
    app = create_app(Settings(max_wait_ms=5), store=store)
    done: list[str] = []

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as c:

            async def post(kind: str, body: dict[str, Any]) -> None:
                r = await c.post(FORECAST.format("slow"), json=body)
                assert r.status_code == 200, r.text
                done.append(kind)

            start = len(calls)
            heavy = asyncio.create_task(post("heavy", heavy_body()))
            while len(calls) - start < 3:  # the heavy request holds the model
                await asyncio.sleep(0.005)
            await asyncio.gather(*(post("light", light_body(s)) for s in range(3)), heavy)

    asyncio.run(scenario())
    assert done == ["light", "light", "light", "heavy"], done


# 5-8. Request rules over HTTP: step, levels, strict numbers, unknown fields.


def test_timestamps_at_another_step_are_a_422(client: TestClient) -> None:
    quarter = [(datetime(2024, 3, 1) + timedelta(minutes=15 * k)).isoformat() for k in range(L)]
    r = client.post(FORECAST.format("m"), json={"history": point_history(), "timestamps": quarter})
    assert_4xx(r, 422, "1 h apart", "15 min after", field="timestamps.1")


def test_sub_second_steps_come_back_exact(client: TestClient) -> None:
    stamps = [(datetime(2024, 3, 1) + timedelta(milliseconds=500 * k)).isoformat() for k in range(P_L)]
    r = client.post(FORECAST.format("moirai"), json={"history": any_history(1), "timestamps": stamps, "horizon": 3})
    assert r.status_code == 200, r.text
    last = datetime.fromisoformat(stamps[-1])
    assert r.json()["timestamps"] == [(last + timedelta(milliseconds=500 * (k + 1))).isoformat() for k in range(3)]


def test_levels_rounding_to_0_in_float32_name_the_level_sent(client: TestClient) -> None:
    r = client.post(FORECAST.format("moirai"), json={"history": any_history(2), "quantiles": [1e-50, 0.5]})
    assert_4xx(r, 422, "quantiles[0] = 1e-50", "float32", field="quantiles.0")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('"1.5"', "history.0.0"),
        ("true", "history.0.0"),
    ],
)
def test_strings_and_booleans_in_history_are_422s(client: TestClient, raw: str, field: str) -> None:
    history = point_history()
    text = httpx.Request("POST", "http://x", json={"history": history, "timestamps": hourly_stamps()}).read().decode()
    text = text.replace(str(history[0][0]), raw, 1)
    r = client.post(FORECAST.format("m"), content=text, headers={"content-type": "application/json"})
    assert_4xx(r, 422, field=field)


@pytest.mark.parametrize("horizon", ["5", 5.0, True])
def test_a_horizon_that_is_not_an_integer_is_a_422(client: TestClient, horizon: Any) -> None:
    body = {"history": point_history(), "timestamps": hourly_stamps(), "horizon": horizon}
    assert_4xx(client.post(FORECAST.format("m"), json=body), 422, field="horizon")


def test_unknown_fields_are_refused_by_name(client: TestClient) -> None:
    body = {"history": point_history(), "timestamps": hourly_stamps(), "horizn": 3}
    r = client.post(FORECAST.format("m"), json=body)
    assert_4xx(r, 422, "horizn", "unknown field", "history, timestamps, quantiles, horizon", field="horizn")


# 9. JSON only; CORS off unless configured.


def test_a_body_not_sent_as_json_is_a_415(client: TestClient) -> None:
    text = httpx.Request("POST", "http://x", json={"history": point_history(), "timestamps": hourly_stamps()}).read()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": content_type} if content_type else {}
        r = client.post(FORECAST.format("m"), content=text, headers=headers)
        assert_4xx(r, 415, "Content-Type: application/json")
    ok = client.post(FORECAST.format("m"), content=text, headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


def test_cors_is_off_unless_origins_are_configured(store: ModelStore) -> None:
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    closed = TestClient(create_app(Settings(), store=store))
    assert "access-control-allow-origin" not in closed.get("/v1/models", headers=origin).headers
    assert closed.options(FORECAST.format("m"), headers=origin).status_code == 405
    app = create_app(Settings(cors_origins="https://app.example.com"), store=store)
    opened = TestClient(app)
    allowed = {**origin, "Origin": "https://app.example.com", "Access-Control-Request-Headers": "content-type"}
    r = opened.options(FORECAST.format("m"), headers=allowed)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in opened.options(FORECAST.format("m"), headers=origin).headers
    with pytest.raises(ValidationError):
        Settings(cors_origins="not an origin")


# 11. Secrets stay secret; /readyz details only for a trusted caller.


def test_a_rejected_api_key_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2 but with a space"
    with pytest.raises(ValidationError) as e:
        Settings(api_key=secret)
    assert secret not in str(e.value) and "16 printable" in str(e.value)
    monkeypatch.setenv("SEER_API_KEY", "tooshort-s3cr3t")
    with pytest.raises(ValidationError) as e:
        Settings()
    assert "tooshort-s3cr3t" not in str(e.value)
    assert "k" * 20 not in repr(Settings(api_key="k" * 20))


def test_readyz_shows_error_text_to_trusted_callers_only(bundles: dict[str, Path], tmp_path: Path) -> None:
    store = ModelStore()
    store.load(parse_model_ref(f"m={bundles['m']}"))
    hidden = tmp_path / "internal-secret-path"
    with pytest.raises(RuntimeError):
        store.load(parse_model_ref(f"broken={hidden}"))
    key, token = "k" * 24, {"Authorization": "Bearer " + "k" * 24}
    for settings, client, headers, shows in (
        (Settings(), ("10.1.2.3", 1), {}, False),
        (Settings(), ("127.0.0.1", 1), {}, True),
        (Settings(api_key=key), ("127.0.0.1", 1), {}, False),
        (Settings(api_key=key), ("10.1.2.3", 1), token, True),
    ):
        r = TestClient(create_app(settings, store=store), client=client).get("/readyz", headers=headers)
        assert r.status_code == 503, r.text
        status = r.json()["models"]["broken"]
        assert status.startswith("failed") and ("internal-secret-path" in r.text) is shows, (client, headers, r.text)


# 12. The OpenAPI examples are the served models' own, and valid.


def test_openapi_examples_fit_the_served_models(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/models/{name}/forecast"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == {"m", "plain", "moirai"}
    names = next(p for p in operation["parameters"] if p["name"] == "name")["examples"]
    assert {v["value"] for v in names.values()} == set(examples)
    for name, example in examples.items():
        r = client.post(FORECAST.format(name), json=example["value"])
        assert r.status_code == 200, (name, r.text)
