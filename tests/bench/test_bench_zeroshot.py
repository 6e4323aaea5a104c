"""bench/zeroshot.py on a micro setting: a tiny random (untrained) Moirai-MoE bundle, 2 windows, 4 samples."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import zeroshot  # noqa: E402
from bench.accuracy import row_key  # noqa: E402
from forecasters.moirai_moe import MoiraiMoEConfig  # noqa: E402
from inference.bundle import save_bundle  # noqa: E402
from inference.registry import get_spec  # noqa: E402
from training.tasks.forecast.metrics import seasonal_naive  # noqa: E402

ROW_FIELDS = {
    "model", "protocol", "dataset", "horizon", "lookback", "mse", "mae", "mase", "crps", "mase_raw", "crps_raw",
    "series", "windows", "zero_shot", "router", "num_samples", "train_seconds", "seed", "commit", "command",
    "test_windows", "epochs", "paper",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    cfg = MoiraiMoEConfig.tiny()
    return get_spec("moirai_moe").build(cfg).eval()


@pytest.fixture(scope="module")
def bundle(tiny_model, tmp_path_factory):
    cfg = tiny_model.config
    meta = {
        "name": "tiny-zeroshot-test",
        "model": "moirai_moe",
        "task": "forecast",
        "model_config": cfg.to_dict(),
        "transform": {"kind": "instance", "scaler": None, "variates": None, "lookback": cfg.lookback,
                      "horizon": cfg.horizon, "max_horizon": cfg.max_horizon},
    }  # fmt: skip
    return save_bundle(tmp_path_factory.mktemp("zs") / "bundle", tiny_model, meta)


def test_seasonal_naive_against_itself_is_one():
    rng = np.random.default_rng(0)
    context = rng.normal(size=(12, 48)).cumsum(axis=1)
    target = rng.normal(size=(12, 16)).cumsum(axis=1) + context[:, -1:]
    naive = seasonal_naive(context, 16, 24)
    s = zeroshot.score(naive[None], context, target, season=24)
    assert s["mase"] == pytest.approx(1.0) and s["crps"] == pytest.approx(1.0)
    assert s["mase_raw"] == pytest.approx(s["naive_mase_raw"])
    # a perfect forecast beats it; a worse one does not
    assert zeroshot.score(target[None], context, target, season=24)["mase"] < 1e-6
    assert zeroshot.score((naive + 5.0)[None], context, target, season=24)["mase"] > 1.0
    # the naive-1 baseline: the model's own score when it repeats the last value
    last = np.repeat(context[:, -1:], 16, axis=1)
    s_last = zeroshot.score(last[None], context, target, season=24)
    assert s_last["naive1_mase"] == pytest.approx(s_last["mase"]) and s["naive1_mase"] == s_last["naive1_mase"]


def test_sample_paths_shape_and_seed(tiny_model):
    ctx = np.random.default_rng(1).normal(size=(5, 32)).astype(np.float32)
    a = zeroshot.sample_paths(tiny_model, ctx, 16, num_samples=4, seed=3, batch_size=2)
    b = zeroshot.sample_paths(tiny_model, ctx, 16, num_samples=4, seed=3, batch_size=2)
    assert a.shape == (4, 5, 16) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


def test_heldout_rows_come_from_the_test_split(tiny_model):
    cfg = tiny_model.config
    for dataset in ("exchange_rate", "ETTh1"):
        s = zeroshot.evaluate_dataset(tiny_model, dataset, cfg.lookback, cfg.horizon, windows=2, num_samples=4)
        assert s.test_rows[0] <= s.rows[0] and s.rows[1] <= s.test_rows[1]
        assert s.rows[1] == s.test_rows[1]  # the last window ends with the test split
        assert s.scored == 2 * s.variates and s.stride == cfg.horizon
        assert all(np.isfinite(v) for v in (s.mase, s.crps, s.mse, s.mae))


def test_row_fields(tiny_model):
    cfg = tiny_model.config
    s = zeroshot.evaluate_dataset(tiny_model, "exchange_rate", cfg.lookback, cfg.horizon, windows=2, num_samples=4)
    row = zeroshot.make_row(
        s, model="moirai_moe", router="learned", zero_shot=True, horizon=cfg.horizon, lookback=cfg.lookback,
        num_samples=4, train_seconds=None, seed=None, commit="abc", command="python bench/zeroshot.py", epochs=None,
    )  # fmt: skip
    assert row.keys() >= ROW_FIELDS
    assert row["zero_shot"] is True and row["protocol"] == "zero-shot/learned" and row["router"] == "learned"
    assert row["paper"]["mse"] is None and "seasonal naive" in row["paper"]["source"]
    assert row["series"] == 8 and row["windows"] == 2 and row["test_windows"] == 16
    json.dumps(row, allow_nan=False)  # plain JSON
    other = zeroshot.make_row(s, model="moirai_moe", router="centroid", zero_shot=True, horizon=16, lookback=32)
    assert row_key(row) != row_key(other)  # both routers' rows coexist in accuracy.json


def test_quick_mode_leaves_accuracy_json_alone(bundle, tmp_path, monkeypatch):
    real = ROOT / "bench" / "results" / "accuracy.json"
    before = real.read_bytes() if real.exists() else None
    monkeypatch.setattr(zeroshot, "merge_row", lambda row: pytest.fail("quick mode wrote to accuracy.json"))
    out = tmp_path / "quick.json"
    argv = ["--quick", "--model-uri", str(bundle), "--num-samples", "2", "--datasets", "exchange_rate", "ETTh2"]
    assert zeroshot.main([*argv, "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert {(r["dataset"], r["zero_shot"], r["protocol"]) for r in rows} == {
        ("exchange_rate", True, "zero-shot/learned"),
        ("ETTh2", False, "in-domain/learned"),
    }
    assert all(r["windows"] == zeroshot.QUICK_WINDOWS and r["num_samples"] == 2 for r in rows)
    # and without --out it goes to a temporary file, not bench/results
    monkeypatch.setattr(zeroshot.tempfile, "tempdir", str(tmp_path))  # its temporary store lands here
    assert zeroshot.main([*argv[:-3], "--datasets", "ETTh2"]) == 0
    assert len(list(tmp_path.glob("seer-zeroshot-*/zeroshot_quick.json"))) == 1
    assert (real.read_bytes() if real.exists() else None) == before


def test_a_trained_model_is_saved_as_a_bundle_that_scores_again(tiny_model, tmp_path):
    path = zeroshot.save_trained(tiny_model, {"recipe": "moirai-moe-tiny-zeroshot", "run_id": "r"}, tmp_path / "b")
    model, facts = zeroshot.load_model(str(path))
    assert facts["recipe"] == "moirai-moe-tiny-zeroshot" and facts["run_id"] == "r"
    x = torch.randn(2, tiny_model.config.lookback, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tiny_model(x), rtol=0, atol=0)


def test_walk_probe_families_and_scores(tiny_model, bundle, tmp_path, monkeypatch):
    """bench/walk_probe.py: the families are what they claim, and a model that *is* persistence scores
    exactly 1 against naive-1 (the ratio the probe reports)."""
    from bench import common, walk_probe

    n, length = 16, 70
    weekends = walk_probe.walks("weekends", n, length, 0)
    same = np.diff(weekends, axis=1) == 0
    assert same[:, 4::7].all() and same[:, 5::7].all() and not same[:, 0::7].any()
    noisy, gauss = walk_probe.walks("noisy", n, length, 0), walk_probe.walks("gaussian", n, length, 0)
    assert not np.allclose(noisy, gauss) and np.isfinite(walk_probe.walks("t3+drift", n, length, 0)).all()
    with pytest.raises(ValueError, match="unknown family"):
        walk_probe.walks("sine", n, length, 0)

    class Persistence:
        config = tiny_model.config

        def forecast_samples(self, x, horizon, num_samples, generator=None):
            return x[:, -1:].expand(-1, horizon, -1)[:, None].expand(-1, num_samples, -1, -1)  # [B, S, H, N]

    r = walk_probe.probe(Persistence(), "gaussian", 8, 3, seed=0)
    assert r["model_vs_naive1"] == pytest.approx(1.0) and r["reversion_slope"] == pytest.approx(0.0, abs=1e-5)
    assert r["model_vs_seasonal_naive"] == pytest.approx(r["naive1_vs_seasonal_naive"])
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    assert walk_probe.main([str(bundle), "--label", "tiny", "--series", "4", "--num-samples", "2"]) == 0
    rows = json.loads((tmp_path / "walk_probe.json").read_text())["rows"]
    assert [r["family"] for r in rows] == list(walk_probe.FAMILIES)
    assert all(np.isfinite(r["model_vs_naive1"]) and r["model"] == "tiny" for r in rows)


def test_zeroshot_recipe_router_and_training_seed():
    default = zeroshot.zeroshot_recipe("centroid")
    assert default.model_config.router == "centroid" and default.before_fit is not None
    learned = zeroshot.zeroshot_recipe("learned", seed=3)
    assert learned.model_config.router == "learned" and learned.before_fit is None and learned.trainer.seed == 3
    assert learned.trainer.seed != default.trainer.seed and default.model_config.scale_prefix == 0.5


def test_report_tables_join_training_seeds_and_the_walk_probe(tmp_path, monkeypatch):
    from bench import common, report

    row = {"router": "centroid", "zero_shot": True, "dataset": "weather", "lookback": 256, "horizon": 64,
           "mase": 0.8, "crps": 0.6, "naive1_mase": 0.4, "mase_raw": 2.0, "naive_mase_raw": 2.5, "mse": 0.2,
           "mae": 0.3, "test_windows": 168, "epochs": 50, "train_seconds": 1800, "seed": 0, "commit": "abc",
           "command": "python bench/zeroshot.py", "num_samples": 100}  # fmt: skip
    (tmp_path / "accuracy.json").write_text(json.dumps({"machine": "m", "results": [row]}))
    (tmp_path / "zeroshot_seed1.json").write_text(json.dumps({"results": [{**row, "seed": 1, "mase": 0.9}]}))
    probe = {"model": "b", "router": "centroid", "family": "gaussian", "model_vs_naive1": 1.01,
             "model_vs_seasonal_naive": 0.96, "naive1_vs_seasonal_naive": 0.95, "reversion_slope": 0.1}  # fmt: skip
    (tmp_path / "walk_probe.json").write_text(
        json.dumps({"series": 64, "num_samples": 50, "season": 7, "rows": [probe]})
    )
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    table = report.zeroshot_table().splitlines()
    assert table[2].startswith("| centroid | 0 | zero-shot | weather |") and "**0.800**" in table[2]
    assert table[3].startswith("| centroid | 1 | zero-shot | weather |") and "**0.900**" in table[3]
    probe_table = report.walk_probe_table()
    assert "| b | centroid | gaussian | **1.010** | 0.960 | 0.950 | 0.100 |" in probe_table
