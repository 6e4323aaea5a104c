"""The pretrained Moirai-MoE shipped in pretrained/moirai-moe-tiny: the file is the one whose scores are
published (checksum = provenance = results rows = README/results page), one command registers it, and
the registered model answers a zero-shot request (weather, which its pretraining never saw)."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from safetensors import safe_open

from seer.cli import main
from seer.pretrained import PRETRAINED_DIR, get_shipped, sha256, shipped

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = PRETRAINED_DIR / "moirai-moe-tiny"


def accuracy_rows() -> list[dict]:
    return json.loads((ROOT / "bench" / "results" / "accuracy.json").read_text())["results"]


def test_the_shipped_file_is_the_one_the_results_rows_scored():
    prov = json.loads((SHIPPED / "PROVENANCE.json").read_text())
    digest = sha256(SHIPPED / "weights.safetensors")
    assert digest == prov["sha256"], "weights.safetensors is not the file its provenance records"
    rows = [r for r in accuracy_rows() if r.get("weights_sha256") == digest]
    assert {(r["dataset"], r["zero_shot"]) for r in rows} >= {("weather", True), ("exchange_rate", True)}
    for r in rows:
        kind = "zero_shot" if r["zero_shot"] else "in_domain"
        assert prov[kind][r["dataset"]]["mase"] == r["mase"] and prov[kind][r["dataset"]]["crps"] == r["crps"]
        assert r["recipe"] == prov["recipe"] == "moirai-moe-tiny-zeroshot" and r["seed"] == prov["train_seed"] == 0
        assert r["router"] == "centroid" and r["command"].startswith("python bench/zeroshot.py --model-uri")
    assert prov["size_bytes"] == (SHIPPED / "weights.safetensors").stat().st_size < 8 * 2**20
    with safe_open(str(SHIPPED / "weights.safetensors"), "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__) <= {"torch.float16", "torch.int64", "torch.bool"}


def test_the_readme_quotes_the_shipped_files_scores():
    sys.path.insert(0, str(ROOT))
    from bench.report import pretrained_table

    table = pretrained_table()
    digest = json.loads((SHIPPED / "PROVENANCE.json").read_text())["sha256"]
    assert f"`{digest[:12]}`" in table and "| weather |" in table and "| exchange_rate |" in table
    assert table in (ROOT / "README.md").read_text(), "README's pretrained block is stale: python bench/report.py"


def test_a_changed_weights_file_is_refused(tmp_path, monkeypatch):
    import seer.pretrained as pretrained

    copy = tmp_path / "moirai-moe-tiny"
    shutil.copytree(SHIPPED, copy)
    with open(copy / "weights.safetensors", "r+b") as f:
        f.seek(-2, 2)
        byte = f.read(1)
        f.seek(-2, 2)
        f.write(bytes([byte[0] ^ 1]))
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(ValueError, match="not the one whose scores are published"):
        get_shipped("moirai-moe-tiny").verify()


def test_one_command_registers_it_and_it_answers_a_zero_shot_request(tmp_path, monkeypatch, capsys):
    from service import Settings, create_app

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    assert main(["pretrained", "register", "moirai-moe-tiny"]) == 0
    out = capsys.readouterr().out
    assert "registered as models:/moirai-moe-tiny/1 (@champion)" in out
    assert main(["pretrained", "register", "moirai-moe-tiny"]) == 0  # same weights: not registered twice
    assert "already registered (same weights) as models:/moirai-moe-tiny/1" in capsys.readouterr().out
    example = shipped()["moirai-moe-tiny"].meta["example_input"]
    with TestClient(create_app(Settings(models="moirai-moe-tiny@champion", tracking_uri=uri))) as client:
        info = client.get("/v1/models/moirai-moe-tiny").json()
        assert info["quantiles"] and str(info["version"]) == "1"
        r = client.post(
            "/v1/models/moirai-moe-tiny/forecast",
            json={"history": example["history"], "timestamps": example["timestamps"], "quantiles": [0.1, 0.9]},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    forecast, lo, hi = (np.asarray(x) for x in (body["forecast"], body["quantiles"]["0.1"], body["quantiles"]["0.9"]))
    assert forecast.shape == (64, 3) and np.isfinite(forecast).all()
    assert (lo <= forecast).all() and (forecast <= hi).all() and (hi - lo).mean() > 0
    history = np.asarray(example["history"])
    assert np.all(np.abs(forecast - history[-1]) < 10 * history.std(axis=0))  # in the series' range, not noise
    assert body["timestamps"][0] > example["timestamps"][-1]


def test_fine_tuning_on_a_file_starts_from_the_shipped_weights(tmp_path):
    from user_files import weekly_csv

    from inference.registry import get_spec
    from training.recipes import file_recipe
    from training.recipes.recipe import FitContext

    recipe = file_recipe("moirai_moe", str(weekly_csv(tmp_path / "sales.csv")), 8, "ft")
    assert recipe.before_fit is not None and recipe.data.calendar_freq == ""
    model = get_spec("moirai_moe").build(recipe.model_config.replace(lookback=recipe.data.lookback, horizon=8))
    metrics = recipe.before_fit(FitContext(recipe, None, model, None, None))  # type: ignore[arg-type]
    shipped_state = get_shipped("moirai-moe-tiny")
    from safetensors.torch import load_file

    weights = load_file(str(shipped_state.weights))
    state = model.state_dict()
    assert metrics["init_tensors"] == len(weights)
    assert all(np.allclose(state[k].float().numpy(), weights[k].float().numpy()) for k in weights)
