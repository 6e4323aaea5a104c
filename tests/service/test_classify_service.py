"""`POST /v1/models/{name}/classify` and its streamed bulk twin, served next to a forecaster: answers per
flow, the model info, and every client mistake a 4xx that names what to fix (never a 500)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.inference.classify_bundles import flows_body, make_bundle, nf_flows
from tests.service.service_fixtures import assert_4xx
from tests.service.service_fixtures import make_bundle as make_forecast_bundle

CLASSIFY = "/v1/models/{}/classify"
BULK = "/v1/models/{}/classify/bulk"
CSV = {"content-type": "text/csv"}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("classify")
    return {
        "nids": make_bundle(tmp / "nids"),
        "kdd": make_bundle(tmp / "kdd", kdd=True),
        "etth1": make_forecast_bundle(tmp / "etth1"),
    }


def test_each_flow_gets_a_label_probability_and_scores(client):
    r = client.post(CLASSIFY.format("nids"), json={"flows": flows_body(6)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "nids", "version": "local"} and len(body["predictions"]) == 6
    classes = ["Benign", "DDoS", "DoS", "Reconnaissance"]
    for p in body["predictions"]:
        assert list(p["scores"]) == classes and p["label"] in classes
        assert p["probability"] == pytest.approx(max(p["scores"].values()))
        assert p["attack_score"] == pytest.approx(1 - p["scores"]["Benign"], abs=1e-6)
        assert sum(p["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    r = client.post(CLASSIFY.format("kdd"), json={"flows": flows_body(2, kdd=True)})
    assert r.status_code == 200 and set(r.json()["predictions"][0]["scores"]) == {"benign", "attack"}


def test_model_info_says_what_a_flow_holds(client):
    info = client.get("/v1/models/nids").json()
    assert info["task"] == "classify" and info["window"] == 4 and info["format"] == "netflow-v2"
    assert info["classes"][0] == info["benign_class"] == "Benign" and info["max_flows"] == 64
    assert "L4_DST_PORT" in info["categorical_features"] and "IN_BYTES" in info["features"]
    assert len(info["example_input"]["flows"]) == 4
    schema = client.get("/openapi.json").json()
    assert "/v1/models/{name}/classify/bulk" in schema["paths"]


def test_client_mistakes_are_4xx_naming_the_field(client):
    url = CLASSIFY.format("nids")
    flows = flows_body(3)
    missing = [flows[0], {k: v for k, v in flows[1].items() if k != "L4_DST_PORT"}]
    assert_4xx(client.post(url, json={"flows": missing}), 422, "['L4_DST_PORT']", field="flows.1")
    for value in ("80", True):
        bad = [{**flows[0], "IN_BYTES": value}]
        assert_4xx(client.post(url, json={"flows": bad}), 422, "must be a number", field="flows.0.IN_BYTES")
    assert_4xx(client.post(url, json={"flows": [{**flows[0], "in_bytes": 1}]}), 422, "unknown fields 'in_bytes'")
    assert_4xx(client.post(url, json={"flows": flows_body(65)}), 413, "at most 64")
    assert_4xx(client.post(url, json={"flows": []}), 422, "at least one")
    assert_4xx(client.post(url, json={"flow": flows}), 422)
    assert_4xx(client.post(url, json={"flows": [[1, 2]]}), 422)
    assert_4xx(client.post(CLASSIFY.format("etth1"), json={"flows": flows}), 404, "forecast model", "/forecast")
    assert_4xx(client.post(CLASSIFY.format("nope"), json={"flows": flows}), 404, "unknown model")
    assert_4xx(client.post("/v1/models/nids/forecast", json={"history": [[1.0]]}), 404, "classify model")


def test_bulk_csv_streams_ndjson_with_the_json_endpoints_answers(client):
    frame = nf_flows().head(150)
    r = client.post(BULK.format("nids"), content=frame.write_csv().encode(), headers=CSV)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [x["row"] for x in lines] == list(range(150))
    # Flows 0..59 as one JSON request: the same windows, so the same answers.
    one = client.post(CLASSIFY.format("nids"), json={"flows": frame.head(60).to_dicts()}).json()["predictions"]
    got = np.array([[x["scores"][c] for c in x["scores"]] for x in lines[:60]])
    want = np.array([[p["scores"][c] for c in p["scores"]] for p in one])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bulk_parquet_in_and_out(client, tmp_path):
    frame = nf_flows().head(130)
    buf = io.BytesIO()
    frame.write_parquet(buf)
    r = client.post(
        BULK.format("nids") + "?format=parquet",
        content=buf.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert r.status_code == 200, r.text
    out = pl.read_parquet(io.BytesIO(r.content))
    assert out.height == 130 and out.columns[:4] == ["row", "label", "probability", "attack_score"]
    assert "p_Reconnaissance" in out.columns


def test_bulk_mistakes(client):
    url = BULK.format("nids")
    csv = nf_flows().head(100).write_csv()
    assert_4xx(client.post(url, content=csv.encode(), headers={"content-type": "application/json"}), 415, "text/csv")
    assert_4xx(client.post(url, content=b"a,b\n1,2\n", headers=CSV), 422, "lacks the model's feature columns")
    assert_4xx(client.post(url, content=b"", headers=CSV), 422, "empty")
    junk = {"content-type": "application/vnd.apache.parquet"}
    assert_4xx(client.post(url, content=b"PAR1 not really", headers=junk), 422, "not a readable Parquet")
    lines = csv.splitlines()
    lines[90] = lines[90].replace(",", ",oops", 1)  # past the first chunk: the stream says so last
    r = client.post(url, content="\n".join(lines).encode(), headers=CSV)
    assert r.status_code == 200
    last = json.loads(r.text.splitlines()[-1])
    assert last["status"] == 422 and "rows 64..99" in last["error"]
    assert_4xx(client.post(BULK.format("etth1"), content=csv.encode(), headers=CSV), 404, "forecast model")


def test_bulk_uploads_are_not_buffered_by_the_generic_body_limit(bundles):
    """The bulk route reads its upload as it arrives: a file far past SEER_MAX_BODY_BYTES is scored (the
    generic limit would have buffered it whole, then refused it), while the JSON endpoint keeps the limit."""
    from fastapi.testclient import TestClient

    from service import Settings, create_app

    csv = nf_flows().head(300).write_csv().encode()
    settings = Settings(models=f"nids={bundles['nids']}", max_wait_ms=0, max_body_bytes=4096)
    assert len(csv) > 10 * settings.max_body_bytes
    with TestClient(create_app(settings)) as small:
        r = small.post(BULK.format("nids"), content=csv, headers=CSV)
        assert r.status_code == 200, r.text
        assert len(r.text.splitlines()) == 300
        body = {"flows": nf_flows().head(60).to_dicts()}
        assert_4xx(small.post(CLASSIFY.format("nids"), json=body), 413, "SEER_MAX_BODY_BYTES")


def test_bulk_uploads_are_bounded_in_size_and_number(client, monkeypatch):
    from service.tasks.classify import stream

    csv = nf_flows().head(100).write_csv().encode()
    monkeypatch.setattr(stream.bulk_settings, "max_upload_bytes", 1000)
    assert_4xx(client.post(BULK.format("nids"), content=csv, headers=CSV), 413, "SEER_CLASSIFY_MAX_UPLOAD_BYTES")
    monkeypatch.setattr(stream.bulk_settings, "max_upload_bytes", 1 << 20)
    monkeypatch.setitem(stream._streams, "open", stream.bulk_settings.max_streams)
    r = client.post(BULK.format("nids"), content=csv, headers=CSV)
    assert_4xx(r, 503, "too many bulk uploads")
    assert r.headers["retry-after"] == "5"
    monkeypatch.setitem(stream._streams, "open", 0)
    assert client.post(BULK.format("nids"), content=csv, headers=CSV).status_code == 200
    assert stream._streams["open"] == 0  # every stream that ended gave its place back
