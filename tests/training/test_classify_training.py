"""The classify objective (class-weighted loss, confusion-matrix scores against scikit-learn, the FPR at
a fixed detection rate), its retraining holdout, and the smoke runs of both recipes: registered, with a
confusion-matrix figure."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from mlflow import MlflowClient
from sklearn.metrics import accuracy_score, f1_score

from data.schemas import ClassifyBatch
from inference.predictor import load_predictor
from signals.nids_flow import FlowTransformer, FlowTransformerConfig
from tests.inference.classify_bundles import make_bundle, nf_flows
from training.recipes import apply_overrides, get_recipe, smoke
from training.run import train
from training.tasks import holdout_for, objective_for
from training.tasks.classify.metrics import fpr_at_detection, matrix_score
from training.tasks.classify.objective import confusion_matrix


def test_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    m = confusion_matrix(truth, pred, 4)
    assert matrix_score(m, "accuracy") == pytest.approx(accuracy_score(truth, pred))
    assert matrix_score(m, "macro_f1") == pytest.approx(f1_score(truth, pred, average="macro"))
    assert matrix_score(m, "weighted_f1") == pytest.approx(f1_score(truth, pred, average="weighted"))
    assert matrix_score(m, "f1_2") == pytest.approx(f1_score(truth, pred, average=None)[2])
    benign = truth == 0
    assert matrix_score(m, "benign_fpr") == pytest.approx((pred[benign] != 0).mean())
    assert matrix_score(m, "detection_rate") == pytest.approx((pred[~benign] != 0).mean())


def test_fpr_at_95_percent_detection():
    attack = np.array([True] * 20 + [False] * 10)
    score = np.concatenate([np.arange(20, 0, -1) / 20, np.arange(10) / 10])  # attacks 1.0 .. 0.05, benign 0 .. 0.9
    # Flag 19 of 20 attacks: threshold = the 19th highest attack score, 0.1; benign scores >= 0.1: 9 of 10.
    assert fpr_at_detection(score, attack, 0.95) == pytest.approx(0.9)
    assert fpr_at_detection(np.r_[np.ones(20), np.zeros(10)], attack) == 0.0


def test_loss_weights_windows_and_metrics_accumulate_over_the_split():
    objective = objective_for("classify")
    cfg = FlowTransformerConfig.tiny(n_classes=2)
    model = FlowTransformer(cfg).eval()
    flows = torch.cat([torch.rand(6, cfg.window, cfg.n_numeric), torch.zeros(6, cfg.window, cfg.n_categorical)], -1)
    label = torch.tensor([0, 1, 0, 1, 1, 1])
    pad = torch.zeros(6, cfg.window, dtype=torch.bool)
    batch = ClassifyBatch(flows=flows, pad_mask=pad, label=label, weight=torch.tensor([3.0, 1, 1, 1, 1, 1]))
    ce = torch.nn.functional.cross_entropy(model(flows, pad), label, reduction="none")
    torch.testing.assert_close(objective.loss(model, batch), (ce * batch.weight).sum() / 8)
    metrics = objective.metrics(model, "test")
    assert {"loss", "accuracy", "macro_f1", "weighted_f1", "f1_0", "f1_1", "benign_fpr", "fpr_at_95", "windows"} <= set(
        metrics
    )
    for i in (0, 3):  # two batches: one split
        objective.update(
            model,
            ClassifyBatch(flows=flows[i : i + 3], pad_mask=pad[:3], label=label[i : i + 3], weight=batch.weight[:3]),
            metrics,
        )
    pred = model(flows, pad).argmax(-1).numpy()
    assert float(metrics["accuracy"].compute()) == pytest.approx(accuracy_score(label.numpy(), pred))
    assert float(metrics["windows"].compute()) == 6
    assert objective.monitors == ("val_loss", "val_error", "val_f1_gap")


def test_holdout_scores_the_last_flows_of_fresh_files(tmp_path):
    holdout = holdout_for("classify")
    frame = nf_flows()
    frame.slice(0, 700).write_csv(tmp_path / "a.csv")
    frame.slice(700, 500).write_csv(tmp_path / "b.csv")
    fresh = holdout.read(str(tmp_path / "*.csv"))
    assert fresh.rows == 1200 and fresh.describe == {"format": "netflow-v2"}
    recipe = get_recipe("nids-nf-bot-iot")
    with pytest.raises(ValueError, match="at most 240"):
        holdout.windows(fresh, recipe, 241)
    windows = holdout.windows(fresh, recipe, 200)
    assert windows.payload == range(1000, 1200)
    p = load_predictor(make_bundle(tmp_path / "bundle"))
    scores = holdout.score(p, fresh, windows)
    assert set(scores) == {"error", "f1_gap", "benign_fpr"} and all(0 <= v <= 1 for v in scores.values())
    written = holdout.write(fresh, tmp_path, "fresh")
    assert pl.read_parquet(written).height == 1200
    other = load_predictor(make_bundle(tmp_path / "kdd", kdd=True))
    assert "not comparable" in holdout.incomparable(p, other)
    with pytest.raises(ValueError, match="nsl-kdd"):
        holdout.score(other, fresh, windows)


def test_smoke_run_registers_with_a_confusion_matrix(tracking):
    # One recipe here (a smoke run costs ~30 s); `seer train nids-nf-bot-iot --smoke` runs the same path.
    recipe = smoke(apply_overrides(get_recipe("nids-nsl-kdd"), ["trainer.progress_bar=false"]))
    assert recipe.data.max_rows > 0 and recipe.model_config.d_model == 16
    result = train(recipe)
    assert result.champion and result.version == "1"
    client = MlflowClient(tracking)
    assert "confusion_matrix.png" in {a.path.split("/")[-1] for a in client.list_artifacts(result.run_id, "plots")}
    assert {"test_accuracy", "test_macro_f1", "test_fpr_at_95", "test_f1_0"} <= set(result.metrics)
    assert client.get_run(result.run_id).data.params["data.dataset"] == recipe.data.dataset
