"""bench/moirai_decode.py on a micro config: the rows and the decode.json payload (nothing is written)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.moirai_decode import BASELINE, payload, run  # noqa: E402

FIELDS = (
    "model",
    "preset",
    "device",
    "dtype",
    "context",
    "horizon",
    "num_samples",
    "n_variates",
    "cached_s",
    "recompute_s",
    "speedup",
    "max_abs_diff",
)


def test_decode_bench_rows_and_payload():
    # tiny preset: lookback 32, patch 8; horizon 24 = 3 patch steps, 2 sample paths, N = 1 and N = 2.
    rows = run([("tiny", 1), ("tiny", 2)], "cpu", None, horizon=24, num_samples=2, budget_s=1e9, threads=1)
    assert [r["n_variates"] for r in rows] == [1, 2]
    for r in rows:
        assert set(FIELDS) <= r.keys()
        assert (r["model"], r["preset"], r["device"], r["dtype"]) == ("moirai_moe", "tiny", "cpu", "fp32")
        assert (r["context"], r["horizon"], r["num_samples"], r["patch_steps"]) == (32, 24, 2, 3)
        assert r["cached_s"] > 0 and r["recompute_s"] > 0
        assert abs(r["speedup"] - r["recompute_s"] / r["cached_s"]) < 0.02 * r["speedup"] + 0.01
        assert r["agree"] and 0 <= r["max_abs_diff"] < 1e-4 and r["rel_diff"] < 1e-4
        assert r["rel_diff"] <= r["rel_diff_vs_scale"] < 1e-4 and r["over_scale_tol"] == 0
        assert r["compared"] == 2 * 24 * r["n_variates"]
        assert not r["recompute_extrapolated"] and r["recompute_steps_measured"] == 3
        assert r["horizon_compared"] == 24 and r["recompute_s"] == r["recompute_measured_s"]

    # No budget: the recompute runs 2 of the 3 patch steps and the rest is predicted, labelled as such.
    (cut,) = run([("tiny", 2)], "cpu", None, horizon=24, num_samples=2, budget_s=0.0, threads=1)
    assert cut["recompute_extrapolated"] and cut["recompute_steps_measured"] == 2
    assert cut["horizon_compared"] == 16 and cut["agree"] and cut["compared"] == 2 * 16 * 2
    assert cut["recompute_s"] >= cut["recompute_measured_s"]

    body = payload(rows + [cut], 0.0, 1.0, {"start": [1.0, 1.0, 1.0], "end": [1.0, 1.0, 1.0]}, quick=True)
    assert body["speedup"] == rows[0]["speedup"]
    assert body["baseline"] == BASELINE == "full recompute per patch step (uni2ts)"
    assert body["results"] == rows + [cut]
    assert "randomly initialised" in body["note"] and "EXTRAPOLATED" in body["note"]
    assert json.loads(json.dumps(body)) == body


def test_a_trained_bundle_is_timed_with_its_own_weights(tmp_path, monkeypatch):
    import torch

    from bench import moirai_decode
    from forecasters.moirai_moe import MoiraiMoEConfig
    from forecasters.moirai_moe.model import MoiraiMoE
    from inference.bundle import save_bundle

    torch.manual_seed(5)
    trained = MoiraiMoE(MoiraiMoEConfig.tiny()).eval()
    meta = {"name": "t", "model": "moirai_moe", "task": "forecast", "model_config": trained.config.to_dict(),
            "transform": {"kind": "instance", "scaler": None, "variates": None}}  # fmt: skip
    monkeypatch.setitem(moirai_decode.TRAINED, "trained", save_bundle(tmp_path / "b", trained, meta))
    model = moirai_decode.model_for("trained", 4 * trained.config.max_horizon, torch.device("cpu"), seed=0)
    assert model.config.max_horizon == 4 * trained.config.max_horizon  # raised for the bench's horizon
    x = torch.randn(1, trained.config.lookback, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained(x), rtol=0, atol=0)
