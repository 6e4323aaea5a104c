"""`POST /v1/models/{name}/rollout` over HTTP with tiny IFactFormer-m bundles: the rollout in physical units
(the predictor's numbers), the model info's rollout block and OpenAPI examples, every client mistake a 4xx
that says what to fix (413 for too much work or too large an answer), a model that blows up a 422 naming
the step (never NaN in JSON), concurrent requests batched (each answer as if alone), and long rollouts in
the heavy lane."""

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from inference.tasks.rollout import RolloutPredictor
from service import Settings, create_app
from tests.inference.rollout_bundles import (
    BLOW_UP,
    COST_STEPS,
    DT,
    GRID_3D,
    MAX_FIELDS,
    MAX_STEPS,
    flow,
    make_rollout_bundle,
)
from tests.service.service_fixtures import assert_4xx, batch_stats, make_bundle

URL = "/v1/models/{}/rollout"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny grids run fastest on one thread, and a busy 2-core machine makes a second one spin (10× slower
    here, measured); the setting is the process's, so it is put back after this module."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "flow": make_rollout_bundle(root / "flow"),
        "flow3d": make_rollout_bundle(root / "flow3d", grid=GRID_3D, name="ifactformer-3d"),
        "wild": make_rollout_bundle(root / "wild", blow_up=BLOW_UP, name="ifactformer-wild"),
        "m": make_bundle(root / "m"),
    }


@pytest.fixture(scope="module")
def local(bundles) -> dict[str, RolloutPredictor]:
    """The same bundles loaded outside the service: the numbers an answer must match."""
    return {name: RolloutPredictor.load(bundles[name]) for name in ("flow", "flow3d", "wild")}


def body(**over: Any) -> dict[str, Any]:
    return {"field": flow().tolist(), "steps": 4, **over}


@pytest.mark.parametrize("name, grid", [("flow", (8, 8)), ("flow3d", GRID_3D)])
def test_a_rollout_round_trips_in_physical_units(client, local, name, grid):
    u = flow(grid)
    r = client.post(URL.format(name), json={"field": u.tolist(), "steps": 6, "every": 3})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["steps"] == [3, 6] and out["dt"] == DT and out["model"] == {"name": name, "version": "local"}
    fields = np.asarray(out["fields"])
    assert fields.shape == (2, *grid, len(grid))
    np.testing.assert_allclose(fields, local[name].rollout(u, 6, every=3), rtol=1e-5, atol=1e-6)
    every_step = client.post(URL.format(name), json={"field": u.tolist(), "steps": 3}).json()
    assert every_step["steps"] == [1, 2, 3]  # every defaults to 1
    np.testing.assert_allclose(every_step["fields"][2], fields[0], rtol=1e-5, atol=1e-6)


def test_model_info_and_openapi_show_the_rollout_block(client):
    info = client.get("/v1/models/flow").json()
    assert info["task"] == "rollout" and info["model"] == "ifactformer"
    assert info["grid"] == [8, 8] and info["components"] == ["u", "v"] and info["dt"] == DT
    assert info["domain"] == [2 * math.pi] * 2 and info["max_steps"] == MAX_STEPS
    assert info["max_cost"] == 64 * COST_STEPS and info["max_fields"] == MAX_FIELDS
    assert info["example_input"]["steps"] == 2 and info["metrics"]["test_rel_l2_step10"] == 0.3
    assert client.get("/v1/models/flow3d").json()["grid"] == list(GRID_3D)
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/models/{name}/rollout"]["post"]
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == {"flow", "flow3d", "wild"} and examples["flow"]["value"]["steps"] == 2
    assert {"200", "404", "413", "415", "422", "503", "504"} <= set(post["responses"])
    r = client.post(URL.format("flow"), json=examples["flow"]["value"])  # the example is a valid request
    assert r.status_code == 200, r.text


def ragged() -> list[Any]:
    rows = flow().tolist()
    rows[7] = rows[7][:5]
    return rows


@pytest.mark.parametrize(
    "payload, status, needles, field",
    [
        (body(field=flow((8, 6)).tolist()), 422, ("[8][8][2]", "holds 6 entries, expected 8"), "field.0"),
        (body(field=flow((6, 6, 6)).tolist()), 422, ("[8][8][2]",), "field"),
        (body(field=np.concatenate([flow()] * 2, -1).tolist()), 422, ("expected 2 (components)",), "field.0.0"),
        (body(field=ragged()), 422, ("field[7] holds 5 entries, expected 8",), "field.7"),
        (body(field=(flow() * 1e7).tolist()), 422, ("over 1e+06",), "field.0.0.0"),
        (body(steps=0), 422, ("from 1 to 50",), "steps"),
        (body(steps=MAX_STEPS + 1), 422, ("from 1 to 50", "continue a longer rollout"), "steps"),
        (body(steps="4"), 422, ("integer",), "steps"),
        (body(every=5), 422, ("every must be an integer from 1 to steps (4)",), "every"),
        (body(extra=1), 422, ("unknown field",), "extra"),
        ({"field": flow().tolist()}, 422, ("steps",), "steps"),
        (body(steps=COST_STEPS + 5, every=5), 413, ("too much work", "at most 40 steps", "max_cost"), "steps"),
        (body(steps=20), 413, ("20 fields", "every >= 2", "max_fields"), "every"),
    ],
)
def test_client_mistakes_are_4xx_saying_what_to_fix(client, payload, status, needles, field):
    assert_4xx(client.post(URL.format("flow"), json=payload), status, *needles, field=field)


def test_non_finite_and_non_numbers_are_a_422_naming_the_value(client):
    u = flow().tolist()
    u[2][3][1] = 1.2345
    for token in ("NaN", "Infinity", "-Infinity"):
        raw = json.dumps({"field": u, "steps": 2}).replace("1.2345", token, 1)
        r = client.post(URL.format("flow"), content=raw, headers={"content-type": "application/json"})
        assert_4xx(r, 422, "NaN or infinite", "first at [2, 3, 1]", field="field.2.3.1")
    u[2][3][1] = "1.5"  # a number in a string: refused by the schema, at its place
    assert_4xx(
        client.post(URL.format("flow"), json={"field": u, "steps": 2}), 422, "valid number", field="field.2.3.1.float"
    )


def test_a_model_that_blows_up_is_a_422_naming_the_step(client, local):
    # The step it diverges at, by hand: the model on the normalised field, the first step not all finite.
    p = local["wild"]
    x = torch.tensor((flow() - p.mean) / p.std, dtype=torch.float32)[None]
    with torch.no_grad():
        finite = torch.isfinite(p.model.rollout(x, 20)[0].reshape(20, -1)).all(dim=1)
    step = 1 + int((~finite).nonzero()[0])
    assert 2 < step < 20
    r = client.post(URL.format("wild"), json=body(steps=20, every=2))
    assert_4xx(r, 422, f"diverged at step {step}", f"ask for at most {step - 1} steps", field="steps")
    assert "NaN" not in r.text and "Infinity" not in r.text
    r = client.post(URL.format("wild"), json=body(steps=step - 1))  # huge, but finite: answered
    assert r.status_code == 200 and "NaN" not in r.text, r.text[:200]


def test_other_tasks_and_unknown_models_are_404s_naming_the_endpoint(client):
    r = client.post(URL.format("m"), json=body())
    assert_4xx(r, 404, "model m is a forecast model: POST /v1/models/m/forecast", field="name")
    r = client.post("/v1/models/flow/forecast", json={"history": [[1.0]]})
    assert_4xx(r, 404, "model flow is a rollout model: POST /v1/models/flow/rollout", field="name")
    assert_4xx(client.post(URL.format("nope"), json=body()), 404, "unknown model 'nope'")
    r = client.post(URL.format("flow"), content="steps=2", headers={"content-type": "text/plain"})
    assert r.status_code == 415


async def post_all(app: Any, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        return list(await asyncio.gather(*(c.post(URL.format("flow"), json=b) for b in bodies)))


def test_concurrent_requests_share_batches_and_each_answer_is_its_own(bundles, local):
    """Six light requests (2-4 steps; one refused for its grid before it may join) and two heavy ones (10
    steps: more than SEER_HEAVY_COST model steps): the light ones share a batch, each heavy one runs alone in
    the heavy lane, and every answer equals the request sent alone."""
    with TestClient(create_app(Settings(models=f"flow={bundles['flow']}", max_wait_ms=300))) as c:
        app = c.app
        bodies = [body(field=flow(seed=s).tolist(), steps=2 + s % 3, every=1 + s % 2) for s in range(5)]
        bodies += [body(field=flow((8, 7)).tolist())]
        bodies += [body(field=flow(seed=9).tolist(), steps=10, every=5), body(steps=10, every=2)]
        responses = asyncio.run(post_all(app, bodies))
        codes = [r.status_code for r in responses]
        assert codes == [200] * 5 + [422] + [200] * 2, [r.text[:200] for r in responses]
        count, total = batch_stats(app, "flow")
        assert total == 7 and 3 <= count <= 4, (count, total)  # light ones batched; each heavy one alone
        for b, r in zip(bodies[:5] + bodies[6:], responses[:5] + responses[6:], strict=True):
            alone = local["flow"].rollout(np.asarray(b["field"]), b["steps"], b["every"])
            np.testing.assert_allclose(r.json()["fields"], alone, rtol=1e-5, atol=1e-6)
