"""The denoise task in training: its metrics (EEGdenoiseNet's definitions), loss, a smoke run of an ART
recipe end to end (registered, the raw-vs-cleaned figure logged, loadable as pyfunc and by the service's
predictor), and the retraining holdout on a fresh EDF."""

import math
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from data.eeg.sources import recording_path
from data.schemas import DenoiseBatch
from inference.predictor import load_predictor
from signals.eeg_artifact import ART, ARTConfig
from training.recipes import RECIPES, apply_overrides, get_recipe, smoke
from training.run import evaluate, train
from training.tasks import holdout_for, objective_for
from training.tasks.denoise.metrics import band_power, window_metrics

RECIPE = "eeg-art-eegmmidb"


def test_metrics_follow_their_definitions():
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(3, 4, 128, generator=g)
    noisy = clean + 0.5 * torch.randn(3, 4, 128, generator=g)
    perfect = window_metrics(noisy, clean, clean)
    assert perfect["rrmse_t"].abs().max() < 1e-9 and (perfect["cc"] - 1).abs().max() < 1e-9
    raw = window_metrics(noisy, clean, noisy)  # doing nothing gains nothing
    assert raw["snr_gain_db"].abs().max() < 1e-9
    expected = 10 * math.log10(clean[0].pow(2).mean().sqrt() / (noisy[0] - clean[0]).pow(2).mean().sqrt())
    assert raw["snr_db"][0].item() == pytest.approx(expected, rel=1e-6)
    scaled = window_metrics(30 * noisy, 30 * clean, 30 * noisy)  # ratios do not depend on the unit
    for name in ("rrmse_t", "rrmse_s", "cc", "snr_db"):
        assert torch.allclose(scaled[name], raw[name], rtol=1e-6)
    t = torch.arange(256) / 128.0
    alpha = torch.sin(2 * math.pi * 10 * t)[None, None]
    assert band_power(alpha, 128.0, (8, 13)) > 100 * band_power(alpha, 128.0, (20, 30))


def test_the_loss_is_normalised_mse_plus_the_optional_spectral_term():
    objective = objective_for("denoise")
    g = torch.Generator().manual_seed(0)
    batch = DenoiseBatch(
        noisy=30 * torch.randn(2, 4, 32, generator=g),
        clean=30 * torch.randn(2, 4, 32, generator=g),
        kind=torch.zeros(2, dtype=torch.long),
        snr_db=torch.full((2,), float("nan")),
    )
    torch.manual_seed(0)
    plain = ART(ARTConfig.tiny(dropout=0.0))
    loss = objective.loss(plain, batch)
    assert loss.dim() == 0 and torch.isfinite(loss) and 0.1 < loss.item() < 20  # unit scale, not µV²
    spectral = ART(ARTConfig.tiny(dropout=0.0, spectral_weight=0.5))
    spectral.load_state_dict(plain.state_dict())
    assert objective.loss(spectral, batch).item() > loss.item()
    assert objective.default_monitor == "val_rrmse_t" and "val_cc" not in objective.monitors  # higher is better


def test_the_recipes_carry_the_official_settings():
    assert {"eeg-art", "eeg-art-eegmmidb", "eeg-art-cpu"} <= set(RECIPES)
    r = get_recipe("eeg-art")
    assert r.model_config == ARTConfig() and r.task == "denoise"
    assert (r.data.sfreq, r.data.window, r.data.l_freq, r.data.h_freq) == (256.0, 1024, 1.0, 50.0)
    assert r.data.recordings == ["eegmmidb-s001r01", "eeglab-sample"] and r.data.snr_range == (-7.0, 2.0)
    assert apply_overrides(r, ["data.window_s=2.0"]).data.window == 512


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        recipe = apply_overrides(smoke(get_recipe(RECIPE)), ["trainer.progress_bar=false"])
        yield train(recipe), recipe, uri, tmp


def test_a_smoke_run_registers_logs_the_figure_and_serves(trained):
    result, recipe, uri, tmp = trained
    assert result.version == "1" and result.champion
    client = MlflowClient(uri)
    assert {"plots/denoised_vs_raw.png"} <= {a.path for a in client.list_artifacts(result.run_id, "plots")}
    run = client.get_run(result.run_id)
    assert {"test_rrmse_t", "test_rrmse_s", "test_cc", "test_snr_db", "val_rrmse_t"} <= set(run.data.metrics)
    mlflow.set_tracking_uri(uri)
    local = mlflow.artifacts.download_artifacts(f"models:/{RECIPE}@champion", dst_path=str(tmp / "dl"))
    predictor = load_predictor(local)
    predictor.warm_up()
    assert predictor.task == "denoise" and len(predictor.channels) == 30 and predictor.sfreq == 128.0
    model = mlflow.pyfunc.load_model(f"models:/{RECIPE}@champion")
    ex = predictor.example_input
    out = model.predict(pd.DataFrame(np.asarray(ex["data"]).T, columns=ex["channels"]))
    assert out.shape == (len(ex["data"][0]), 30) and np.isfinite(out.to_numpy()).all()
    metrics = evaluate(recipe, f"models:/{RECIPE}@champion", uri=uri)
    assert metrics["test_windows"] > 0 and metrics["test_rrmse_t"] > 0


def test_the_retraining_holdout_scores_on_fresh_recordings(trained, tmp_path):
    result, recipe, uri, tmp = trained
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    shutil.copy(recording_path("eegmmidb-s001r01"), fresh_dir / "S001R01.edf")
    holdout = holdout_for("denoise")
    fresh = holdout.read(str(fresh_dir / "*.edf"))
    assert fresh.describe == {"recordings": "1", "seconds": "61.0"}
    folder = holdout.write(fresh, tmp_path / "out", "job")
    assert (folder / "S001R01.edf").is_file()
    windows = holdout.windows(fresh, recipe, 4)
    with pytest.raises(ValueError, match="does not fit"):
        holdout.windows(fresh, recipe, 10_000)
    predictor = load_predictor(next((tmp / "dl").rglob("config.json")).parent)
    scores = holdout.score(predictor, fresh, windows)
    assert set(scores) == {"rrmse_t", "rrmse_s"} and all(v > 0 for v in scores.values())
    assert holdout.incomparable(predictor, predictor) is None
