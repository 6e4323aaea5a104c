"""Issue 5, serving: a probabilistic any-variate foundation model (a tiny Moirai-MoE bundle, instance
scaled) behind the HTTP API. Quantiles for the requested levels, any number of variates up to the bound
in the metadata, any horizon up to max_horizon, null/NaN as missing values, seeded (the same request
gives the same numbers, alone or in a batch), and 4xx messages that say what to send; point models keep
their contract.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference.tasks.forecast import DEFAULT_MAX_VARIATES, MAX_QUANTILES, ForecastPredictor
from service import Settings, create_app
from service.settings import parse_model_ref
from service.store import ModelStore
from tests.inference.forecast_bundles import P_H, P_HMAX, P_L, make_moirai_bundle
from tests.inference.forecast_bundles import any_history as history
from tests.service.service_fixtures import assert_4xx, batch_stats, make_bundle, post_all

L, H, HMAX = P_L, P_H, P_HMAX  # the tiny Moirai-MoE: lookback 32, horizon 16, max_horizon 64
LEVELS = [0.1, 0.5, 0.9]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {"moirai": make_moirai_bundle(root / "moirai"), "plain": make_bundle(root / "plain", calendar=False)}


def post(client: TestClient, body: dict[str, Any] | str, name: str = "moirai") -> Any:
    if isinstance(body, str):
        return client.post(f"/v1/models/{name}/forecast", content=body, headers={"content-type": "application/json"})
    return client.post(f"/v1/models/{name}/forecast", json=body)


def ok(client: TestClient, body: dict[str, Any] | str) -> dict[str, Any]:
    r = post(client, body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_model_metadata_states_the_bounds(client: TestClient) -> None:
    info = client.get("/v1/models/moirai").json()
    assert info["model"] == "moirai_moe" and info["quantiles"] is True and info["probabilistic"] is True
    assert info["variates"] == [] and info["any_variates"] is True and info["max_variates"] == DEFAULT_MAX_VARIATES
    assert (info["lookback"], info["horizon"], info["max_horizon"]) == (L, H, HMAX)
    assert info["allows_missing"] is True and info["uses_timestamps"] is False and info["step_seconds"] is None
    assert ok(client, info["example_input"])["quantiles"] is None  # the example is a valid request
    plain = client.get("/v1/models/plain").json()
    assert plain["quantiles"] is False and plain["probabilistic"] is False and plain["any_variates"] is False
    assert (plain["max_horizon"], plain["max_variates"], plain["allows_missing"]) == (8, 3, False)
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert listed["moirai"]["max_horizon"] == HMAX and listed["moirai"]["example_input"] is None


def test_quantiles_for_the_requested_levels(client: TestClient) -> None:
    body = ok(client, {"history": history(3), "quantiles": LEVELS})
    assert list(body["quantiles"]) == ["0.1", "0.5", "0.9"]
    q = np.stack([np.asarray(body["quantiles"][k]) for k in ("0.1", "0.5", "0.9")], axis=-1)
    assert q.shape == (H, 3, 3) and np.isfinite(q).all()
    assert (np.diff(q, axis=-1) >= 0).all()  # monotone in the level
    assert (q[..., 2] > q[..., 0]).any()  # a real spread, not one path
    # `forecast` is the median of the same sample paths, with or without quantiles asked for.
    np.testing.assert_array_equal(np.asarray(body["forecast"]), q[..., 1])
    alone = ok(client, {"history": history(3)})
    assert alone["quantiles"] is None and alone["forecast"] == body["forecast"]
    assert body["timestamps"] is None and body["model"] == {"name": "moirai", "version": "local"}
    # Original units: each variate's median stays near its own level (1, 10, 100).
    assert np.allclose(np.median(q[..., 1], axis=0), [1, 10, 100], rtol=0.5, atol=5)


@pytest.mark.parametrize("n", [1, 5, DEFAULT_MAX_VARIATES])
def test_any_number_of_variates(client: TestClient, n: int) -> None:
    body = ok(client, {"history": history(n), "quantiles": [0.25, 0.75]})
    assert np.asarray(body["forecast"]).shape == (H, n)
    assert all(np.asarray(v).shape == (H, n) for v in body["quantiles"].values())


def test_too_many_variates_or_ragged_rows(client: TestClient) -> None:
    wide = history(DEFAULT_MAX_VARIATES + 1)
    assert_4xx(post(client, {"history": wide}), 422, f"1 <= N <= {DEFAULT_MAX_VARIATES}", "got 32 × 65")
    ragged = history(3)
    ragged[4] = ragged[4][:2]
    assert_4xx(post(client, {"history": ragged}), 422, "row 4 has 2 values", field="history.4")
    assert_4xx(post(client, {"history": [[]] * L}), 422, "got 32 × 0", field="history")
    assert_4xx(post(client, {"history": history(2)[:-1]}), 422, "32 rows", "got 31 × 2", field="history")


@pytest.mark.parametrize("horizon", [1, H + 5, HMAX])
def test_any_horizon_up_to_max_horizon(client: TestClient, horizon: int) -> None:
    body = ok(client, {"history": history(2), "quantiles": LEVELS, "horizon": horizon})
    assert np.asarray(body["forecast"]).shape == (horizon, 2)
    assert all(np.asarray(v).shape == (horizon, 2) for v in body["quantiles"].values())


def test_horizon_past_max_horizon_is_a_422(client: TestClient) -> None:
    r = post(client, {"history": history(2), "horizon": HMAX + 1})
    assert_4xx(r, 422, f"at most {HMAX}", "max_horizon", field="horizon")


def test_missing_values_are_masked(client: TestClient) -> None:
    hist = history(3)
    for i in range(0, L, 3):
        hist[i][1] = None
    hist[-1][2] = None
    for row in hist[:10]:  # a shorter history for variate 0: leading gap
        row[0] = None
    body = ok(client, {"history": hist, "quantiles": LEVELS})
    assert np.isfinite(np.asarray(body["forecast"])).all()
    assert all(np.isfinite(np.asarray(v)).all() for v in body["quantiles"].values())
    # A JSON NaN literal means the same as null.
    raw = json.dumps({"history": hist, "quantiles": LEVELS}).replace("null", "NaN")
    assert ok(client, raw) == body


def test_all_missing_variate_is_a_422(client: TestClient) -> None:
    hist = history(3)
    for row in hist:
        row[1] = None
    detail = assert_4xx(post(client, {"history": hist}), 422, "variate 1", "no observed value", field="history")
    assert "at least one number" in detail
    hist = history(2)
    hist[3][0] = float("inf")
    raw = json.dumps({"history": hist}).replace("Infinity", "1e999")
    assert_4xx(post(client, raw), 422, "infinite", "null for a missing value", field="history.3.0")


@pytest.mark.parametrize(
    ("levels", "needle", "field"),
    [
        ([0.0], "strictly between 0 and 1", "quantiles.0"),
        ([0.5, 1.0], "strictly between 0 and 1", "quantiles.1"),
        ([1.5], "strictly between 0 and 1", "quantiles.0"),
        ([-0.1], "strictly between 0 and 1", "quantiles.0"),
        ([0.1, 0.5, 0.5], "strictly increasing", "quantiles.2"),
        ([0.9, 0.1], "strictly increasing", "quantiles.1"),
        ([], "1 to 20 levels", "quantiles"),
        ([(k + 1) / 30 for k in range(MAX_QUANTILES + 1)], "got 21", "quantiles"),
    ],
)
def test_bad_levels_are_422s(client: TestClient, levels: list[float], needle: str, field: str) -> None:
    assert_4xx(
        post(client, {"history": history(2), "quantiles": levels}), 422, needle, "e.g. [0.1, 0.5, 0.9]", field=field
    )


def test_same_request_same_quantiles(client: TestClient, bundles: dict[str, Path]) -> None:
    request = {"history": history(4, seed=3), "quantiles": LEVELS, "horizon": 20}
    first, second = ok(client, request), ok(client, request)
    assert first == second
    direct = ForecastPredictor.load(bundles["moirai"]).predict_quantiles(
        np.asarray(history(4, seed=3))[None], LEVELS, 20
    )
    np.testing.assert_allclose(np.asarray(first["quantiles"]["0.9"]), direct[0, ..., 2], rtol=1e-6, atol=1e-9)


def test_timestamps_follow_the_request_step(client: TestClient) -> None:
    stamps = [f"2024-05-01T{h:02d}:30:00Z" for h in range(24)] + [f"2024-05-02T{h:02d}:30:00Z" for h in range(8)]
    body = ok(client, {"history": history(1), "timestamps": stamps, "horizon": 3})
    assert body["timestamps"] == [f"2024-05-02T{h:02d}:30:00+00:00" for h in (8, 9, 10)]


def test_concurrent_requests_of_different_shapes_share_batches(store: ModelStore) -> None:
    """Different N and horizons in one batch: every request gets its own answer, equal to the answer it
    gets alone (the draws do not depend on batch-mates); a refused one fails alone."""
    app = create_app(Settings(max_batch_size=8, max_wait_ms=500), store=store)
    shapes = [(1, H), (2, 5), (3, HMAX), (5, H), (1, 7), (4, 30), (2, H)]
    requests = [("moirai", {"history": history(n, seed=n), "quantiles": LEVELS, "horizon": h}) for n, h in shapes]
    empty = history(2)
    for row in empty:
        row[0] = None
    requests.append(("moirai", {"history": empty}))
    responses = asyncio.run(post_all(app, requests))
    assert [r.status_code for r in responses] == [200] * len(shapes) + [422], [r.text for r in responses]
    count, total = batch_stats(app, "moirai")
    assert total == len(shapes) and count < len(shapes), (count, total)  # they queued together
    p = store.get("moirai")
    assert p is not None
    for (n, h), r in zip(shapes, responses, strict=False):
        body = r.json()
        assert np.asarray(body["forecast"]).shape == (h, n)
        alone = p.predictor.predict_quantiles(np.asarray(history(n, seed=n))[None], [0.1, 0.5, 0.9], horizon=h)[0]
        np.testing.assert_allclose(np.asarray(body["quantiles"]["0.5"]), alone[..., 1], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(np.asarray(body["forecast"]), alone[..., 1], rtol=1e-6, atol=1e-9)


def test_point_models_keep_their_contract(client: TestClient) -> None:
    body = {"history": history(3)[:16], "quantiles": [0.1, 0.9]}
    assert_4xx(post(client, body, "plain"), 422, "point forecasts only", "omit `quantiles`", field="quantiles")
    hist = history(3)[:16]
    hist[2][1] = None
    assert_4xx(post(client, {"history": hist}, "plain"), 422, "NaN or infinite", field="history.2.1")
    assert_4xx(
        post(client, {"history": history(3)[:16], "horizon": 9}, "plain"), 422, "at most 8 (this model's horizon)"
    )
    assert_4xx(post(client, {"history": history(2)[:16]}, "plain"), 422, "16 × 3", "got 16 × 2")


def test_predictor_api(bundles: dict[str, Path]) -> None:
    """`ForecastPredictor` on an instance-scaled bundle: identity scaling, any N, NaN masked, [B, h, N, Q]."""
    p = ForecastPredictor.load(bundles["moirai"])
    assert p.scaler is None and p.any_variates and p.probabilistic and p.allows_missing and p.max_horizon == HMAX
    x = np.stack([np.asarray(history(2, seed=s)) for s in range(3)])  # [3, L, 2]
    x[1, :5, 0] = np.nan
    q = p.predict_quantiles(x, [0.2, 0.8], horizon=40, num_samples=16, seed=7)
    assert q.shape == (3, 40, 2, 2) and np.isfinite(q).all() and (q[..., 1] >= q[..., 0]).all()
    np.testing.assert_array_equal(q, p.predict_quantiles(x, [0.2, 0.8], horizon=40, num_samples=16, seed=7))
    point = p.predict(x)  # the model's own point forecast (greedy mean decoding), trained horizon
    assert point.shape == (3, H, 2) and np.isfinite(point).all()
    assert p.predict(x, horizon=4).shape == (3, 4, 2)
    with pytest.raises(ValueError, match=f"quantile forecasts reach {HMAX}"):
        p.predict(x, horizon=H + 1)
    with pytest.raises(ValueError, match=f"horizon must be at most {HMAX}"):
        p.predict_quantiles(x, [0.5], horizon=HMAX + 1)
    x[2, :, 1] = np.nan
    with pytest.raises(ValueError, match="batch row 2: history has no observed value for variate 1"):
        p.predict_quantiles(x, [0.5])
    with pytest.raises(ValueError, match="1 <= N <= 64"):
        p.predict(np.zeros((1, L, 65)))


def test_bundles_that_do_not_fit_fail_to_load(tmp_path: Path) -> None:
    """Warm-up checks the example and the horizon bound; a bundle without an example warms on a ramp."""
    ModelStore().load(parse_model_ref(f"bare={make_moirai_bundle(tmp_path / 'bare', example=False)}"))
    too_far = make_moirai_bundle(tmp_path / "far", max_horizon=HMAX + 1)
    with pytest.raises(RuntimeError, match="max_horizon 65 exceeds the model's 64"):
        ModelStore().load(parse_model_ref(f"far={too_far}"))


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    n=st.integers(1, 4),
    values=st.lists(
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e6, 1e6)),
        min_size=1,
        max_size=12,
    ),
    levels=st.one_of(st.none(), st.lists(st.floats(-0.5, 1.5, allow_nan=False), max_size=5)),
    horizon=st.one_of(st.none(), st.integers(1, HMAX + 2)),
)
def test_any_values_get_a_forecast_or_a_422(
    client: TestClient, n: int, values: list[float | None], levels: list[float] | None, horizon: int | None
) -> None:
    """Nulls, NaN, ±inf, extreme magnitudes, odd levels and horizons: a 200 or a 422, never a 5xx."""
    cells = (values * (L * n // len(values) + 1))[: L * n]
    hist = [cells[i * n : (i + 1) * n] for i in range(L)]
    body: dict[str, Any] = {"history": hist, "quantiles": levels, "horizon": horizon}
    raw = json.dumps(body).replace("Infinity", "1e999")  # NaN stays a literal, which the service reads
    r = post(client, raw)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        got = r.json()
        assert np.isfinite(np.asarray(got["forecast"])).all()
        assert np.asarray(got["forecast"]).shape == (horizon or H, n)
