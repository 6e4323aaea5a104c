"""Train, test, log and register a recipe; evaluate a registered model on the protocol's test set."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import MLFlowLogger

from core.ops.dispatch import reset_used_impls, used_impls
from data.artifact import ForecastPredictor, save_bundle
from data.windows import ForecastDataModule
from forecasters import get_spec
from training.plots import forecast_figure
from training.recipes import Recipe
from training.system import KeepBestWeights, SeerSystem
from training.tracking import flatten, log_and_register, run_tags, tracking_uri

log = logging.getLogger("seer.training")


@dataclass
class TrainResult:
    run_id: str
    registered_name: str
    version: str
    champion: bool
    metrics: dict[str, float]
    tracking_uri: str


def resolve(recipe: Recipe, dm: ForecastDataModule) -> Recipe:
    """Tie the model's input/output sizes to the data (lookback, horizon, variates, calendar)."""
    cfg = recipe.model_config.replace(
        lookback=recipe.data.lookback, horizon=recipe.data.horizon, n_variates=dm.n_variates, n_marks=dm.n_marks
    )
    return replace(recipe, model_config=cfg)


def _trainer(recipe: Recipe, logger: Any, callbacks: list[L.Callback]) -> L.Trainer:
    t = recipe.trainer
    return L.Trainer(
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=1,
        precision=t.precision,  # type: ignore[arg-type]
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        limit_test_batches=t.limit_test_batches,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=False,
    )


def _example_frame(example: dict[str, Any], variates: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(example["history"], columns=variates)
    frame.insert(0, "date", example["timestamps"])
    return frame


def train(
    recipe: Recipe,
    *,
    register: bool = True,
    uri: str | None = None,
    claim_champion: bool = True,
    callbacks: list[L.Callback] | None = None,
) -> TrainResult:
    """The whole path: data → fit (early stopping, best weights) → test → MLflow run → registry.

    `claim_champion=False` registers the new version without touching any alias (the retraining
    scheduler decides on `@champion` itself, after comparing); `callbacks` are extra Lightning
    callbacks (the scheduler's cancellation check).
    """
    uri = uri or tracking_uri()
    L.seed_everything(recipe.trainer.seed, workers=True, verbose=False)
    dm = ForecastDataModule(recipe.data)
    dm.setup()
    recipe = resolve(recipe, dm)
    spec = get_spec(recipe.model)
    model = spec.build(recipe.model_config)
    system = SeerSystem(model, task=spec.task, lr=recipe.trainer.lr, lr_decay=recipe.trainer.lr_decay)

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(recipe.experiment)
    with mlflow.start_run(run_name=f"{recipe.name}-h{recipe.data.horizon}") as run:
        mlflow.log_params(flatten(recipe.to_dict()))
        mlflow.log_dict(recipe.to_dict(), "config.json")
        logger = MLFlowLogger(tracking_uri=uri, run_id=run.info.run_id, experiment_name=recipe.experiment)
        best = KeepBestWeights("val_mse")
        stop = EarlyStopping("val_mse", patience=recipe.trainer.patience, mode="min")
        trainer = _trainer(recipe, logger, [best, stop, *(callbacks or [])])
        reset_used_impls()  # the run's tag names the kernels this run used, nothing earlier in the process
        trainer.fit(system, datamodule=dm)
        tested = trainer.test(system, datamodule=dm, verbose=False)[0]
        metrics = {k: float(v) for k, v in tested.items()}
        metrics["best_epoch"] = float(best.best_epoch)
        metrics["epochs"] = float(trainer.current_epoch)
        if best.best is not None:
            metrics["best_val_mse"] = best.best
        mlflow.log_metrics({k: v for k, v in metrics.items() if k.startswith(("test_", "best_"))})
        device = str(next(model.parameters()).device)
        mlflow.set_tags(run_tags(recipe.name, recipe.model, recipe.data.dataset, used_impls(), device))

        model = model.cpu().eval()
        meta = {
            "name": recipe.registered_name or recipe.name,
            "model": recipe.model,
            "task": spec.task,
            "model_config": recipe.model_config.to_dict(),
            "transform": dm.transform_state(),
            "example_input": dm.example_input(),
            "metrics": {k: v for k, v in metrics.items() if k.startswith("test_")},
            "recipe": recipe.name,
            "run_id": run.info.run_id,
        }
        with tempfile.TemporaryDirectory() as tmp:
            bundle = save_bundle(Path(tmp) / "bundle", model, meta)
            _log_forecast_plot(bundle, dm)
            version, champion = "", False
            if register:
                example = _example_frame(meta["example_input"], dm.variates)
                version, champion = log_and_register(bundle, meta["name"], example, claim_champion=claim_champion)
    return TrainResult(run.info.run_id, meta["name"], version, champion, metrics, uri)


def _log_forecast_plot(bundle: Path, dm: ForecastDataModule) -> None:
    """Forecast vs truth on the last test window, in original units, through the serving predictor."""
    p = ForecastPredictor.load(bundle)
    ex = dm.example_input()
    end = dm.split.test[1]
    truth = dm.scaler.inverse(dm.values[end - p.horizon : end])
    from datetime import datetime

    stamps = [datetime.fromisoformat(s) for s in ex["timestamps"]]
    pred = p.predict(np.asarray(ex["history"])[None], [stamps] if p.uses_timestamps else None)[0]
    fig = forecast_figure(np.asarray(ex["history"]), truth, pred, p.variates, f"{p.name}: last test window")
    mlflow.log_figure(fig, "plots/forecast_vs_truth.png")


def evaluate(recipe: Recipe, model_uri: str, *, uri: str | None = None) -> dict[str, float]:
    """Protocol test metrics (scaled data, every window) of a registered or local model."""
    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    local = Path(model_uri)
    path = local if local.exists() else Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    predictor = ForecastPredictor.load(path)
    t = predictor.meta["transform"]
    data = replace(recipe.data, lookback=int(t["lookback"]), horizon=int(t["horizon"]), variates=tuple(t["variates"]))
    dm = ForecastDataModule(data)
    dm.setup()
    system = SeerSystem(predictor.model, task="forecast", lr=recipe.trainer.lr)
    trainer = _trainer(replace(recipe, data=data), logger=False, callbacks=[])
    with torch.no_grad():
        tested = trainer.test(system, datamodule=dm, verbose=False)[0]
    return {k: float(v) for k, v in tested.items()}
