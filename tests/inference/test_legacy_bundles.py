"""Bundles registered before the platform refactor still load, give the same numbers, and serve.

The fixtures were written by the old code (tests/fixtures/legacy_bundles/README.md); nothing here
regenerates them.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from inference.predictor import load_predictor
from service import Settings, create_app

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_bundles"
NAMES = ("itransformer-etth1", "moirai-moe-tiny")


def _example(path: Path) -> tuple[dict, dict]:
    meta = json.loads((path / "config.json").read_text())
    expected = json.loads((path / "expected.json").read_text())
    return meta, expected


@pytest.mark.parametrize("name", NAMES)
def test_legacy_bundle_loads_and_predicts_the_same(name: str) -> None:
    path = LEGACY / name
    meta, expected = _example(path)
    predictor = load_predictor(path)
    assert predictor.task == meta["task"] == "forecast"
    history = np.asarray(meta["example_input"]["history"], dtype=np.float64)[None]
    if "quantiles" in expected:
        got = predictor.predict_quantiles(history, expected["quantiles"], seed=expected["seed"])[0]
    else:
        stamps = [[datetime.fromisoformat(s) for s in meta["example_input"]["timestamps"]]]
        got = predictor.predict(history, stamps)[0]
    np.testing.assert_allclose(got, np.asarray(expected["output"]), rtol=1e-5, atol=1e-5)


def test_legacy_bundles_serve_over_http() -> None:
    refs = ",".join(f"{name}={LEGACY / name}" for name in NAMES)
    with TestClient(create_app(Settings(models=refs))) as client:
        assert client.get("/readyz").status_code == 200
        for name in NAMES:
            meta, expected = _example(LEGACY / name)
            info = client.get(f"/v1/models/{name}").json()
            assert info["task"] == "forecast" and info["lookback"] == meta["transform"]["lookback"]
            body: dict = {"history": meta["example_input"]["history"]}
            if meta["example_input"].get("timestamps"):
                body["timestamps"] = meta["example_input"]["timestamps"]
            if "quantiles" in expected:
                body["quantiles"] = expected["quantiles"]
            r = client.post(f"/v1/models/{name}/forecast", json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            if "quantiles" in expected:  # served quantiles: the same seeded draws as the old predictor
                q = np.stack([np.asarray(out["quantiles"][str(level)]) for level in expected["quantiles"]], -1)
                np.testing.assert_allclose(q, np.asarray(expected["output"]), rtol=1e-4, atol=1e-4)
            else:
                np.testing.assert_allclose(out["forecast"], np.asarray(expected["output"]), rtol=1e-5, atol=1e-5)
