"""Recipes, overrides, and a 2-step training run that logs to a real SQLite MLflow store and registers."""

import json

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from training.recipes import RECIPES, apply_overrides, get_recipe, smoke
from training.run import evaluate, train


def test_recipes_carry_the_official_defaults():
    assert set(RECIPES) >= {"itransformer-etth1", "itransformer-etth2", "itransformer-ettm1", "itransformer-ettm2"}
    r = get_recipe("itransformer-etth1")
    assert (r.data.lookback, r.data.horizon, r.data.batch_size) == (96, 96, 32)
    assert (r.trainer.lr, r.trainer.patience, r.model_config.d_model) == (1e-4, 3, 256)
    assert r.registered_name == "itransformer-etth1" and r.task == "forecast"
    with pytest.raises(KeyError, match="available"):
        get_recipe("nope")


def test_dotted_overrides():
    r = apply_overrides(
        get_recipe("itransformer-ettm1"), ["trainer.max_epochs=3", "data.horizon=192", "model.dropout=0"]
    )
    assert (r.trainer.max_epochs, r.data.horizon, r.model_config.dropout) == (3, 192, 0)
    for bad in ["trainer.nope=1", "what.x=1", "noequals"]:
        with pytest.raises(ValueError):
            apply_overrides(r, [bad])
    with pytest.raises(ValueError, match="max_epochs"):
        apply_overrides(r, ["trainer.max_epochs=0"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One smoke training run (2 steps), registered in a fresh SQLite store."""
    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        recipe = smoke(get_recipe("itransformer-etth1"))
        result = train(recipe)
        yield result, recipe, uri, tmp


def test_two_step_run_registers_champion(trained):
    result, recipe, uri, _ = trained
    assert result.version == "1" and result.champion
    client = MlflowClient(uri)
    mv = client.get_model_version_by_alias("itransformer-etth1", "champion")
    assert str(mv.version) == "1"
    run = client.get_run(result.run_id)
    assert run.data.tags["seer.kernels"] == "attention=fused,layer_norm=reference"
    assert run.data.tags["seer.recipe"] == "itransformer-etth1"
    assert run.data.params["data.dataset"] == "ETTh1"
    assert "test_mse" in run.data.metrics and "val_mse" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(result.run_id)}
    assert "config.json" in arts and "plots" in arts
    assert result.metrics["test_windows"] == 64  # 2 test batches of 32 in smoke mode


def test_registered_model_is_config_plus_safetensors_and_loads_as_pyfunc(trained):
    _, recipe, uri, tmp = trained
    mlflow.set_tracking_uri(uri)
    local = mlflow.artifacts.download_artifacts("models:/itransformer-etth1@champion", dst_path=str(tmp / "dl"))
    files = {p.name for p in __import__("pathlib").Path(local).rglob("*") if p.is_file()}
    assert {"config.json", "weights.safetensors", "pyfunc_model.py"} <= files
    assert not any(f.endswith((".pkl", ".pickle", ".pt")) for f in files)
    model = mlflow.pyfunc.load_model("models:/itransformer-etth1@champion")
    cfg = json.loads(next(__import__("pathlib").Path(local).rglob("config.json")).read_text())
    ex = cfg["example_input"]
    import pandas as pd

    frame = pd.DataFrame(ex["history"], columns=cfg["transform"]["variates"])
    frame.insert(0, "date", ex["timestamps"])
    out = model.predict(frame)
    assert out.shape == (96, 8) and list(out.columns)[0] == "date"
    assert np.isfinite(out.drop(columns="date").to_numpy()).all()


def test_second_version_does_not_steal_the_alias(trained):
    _, recipe, uri, tmp = trained
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        again = train(recipe, uri=uri)
    assert again.version == "2" and not again.champion
    assert str(MlflowClient(uri).get_model_version_by_alias("itransformer-etth1", "champion").version) == "1"


def test_evaluate_registered_champion(trained):
    _, recipe, uri, _ = trained
    metrics = evaluate(recipe, "models:/itransformer-etth1@champion", uri=uri)
    assert metrics["test_windows"] == 64 and metrics["test_mse"] > 0
