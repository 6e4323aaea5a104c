"""Train, test, log and register a recipe; evaluate a registered model on the protocol's test set.

Dataset recipes train on one dataset's protocol split (`ForecastDataModule`); corpus recipes
(`recipe.corpus` set) pretrain on the corpus mixture (`training.pretrain.PretrainDataModule`), after a
dense warm-up that sets the centroid router's token clusters when the model routes by centroids, and
test on held-out windows of the val/test splits. Both register the same kind of bundle; a corpus
model's transform is `"kind": "instance"` (the model scales each series itself, any variates).
"""

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
from inference.tasks.forecast import ForecastPredictor
from inference.bundle import load_bundle, save_bundle
from data.series.windows import ForecastDataConfig, ForecastDataModule
from inference.registry import get_spec
from training.plots import forecast_figure
from training.pretrain import PrefixedMLFlowLogger, PretrainDataConfig, PretrainDataModule, dense_warmup
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


def data_module(recipe: Recipe) -> ForecastDataModule | PretrainDataModule:
    """The recipe's data: the corpus mixture for corpus recipes, else its dataset's protocol split."""
    if recipe.corpus is not None and isinstance(recipe.data, PretrainDataConfig):
        return PretrainDataModule(recipe.data, recipe.corpus)
    if isinstance(recipe.data, PretrainDataConfig):
        raise ValueError(f"recipe {recipe.name} has PretrainDataConfig data but no corpus")
    return ForecastDataModule(recipe.data)


def resolve(recipe: Recipe, dm: ForecastDataModule | PretrainDataModule) -> Recipe:
    """Tie the model's input/output sizes to the data (lookback, horizon, variates, calendar); for the
    corpus, variates = the most a training window has (the model itself takes any number)."""
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
        gradient_clip_val=t.gradient_clip_val,
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
    dm = data_module(recipe)
    dm.setup()
    recipe = resolve(recipe, dm)
    spec = get_spec(recipe.model)
    model = spec.build(recipe.model_config)
    t = recipe.trainer
    system = SeerSystem(model, task=spec.task, lr=t.lr, lr_decay=t.lr_decay)
    if t.monitor == "val_nll" and not system.probabilistic:
        raise ValueError(f"trainer.monitor val_nll needs a probabilistic model; {recipe.model} is not")

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(recipe.experiment)
    with mlflow.start_run(run_name=f"{recipe.name}-h{recipe.data.horizon}") as run:
        mlflow.log_params(flatten(recipe.to_dict()))
        mlflow.log_dict(recipe.to_dict(), "config.json")
        logger = MLFlowLogger(tracking_uri=uri, run_id=run.info.run_id, experiment_name=recipe.experiment)
        reset_used_impls()  # the run's tag names the kernels this run used, nothing earlier in the process
        warm: dict[str, float] = {}
        if isinstance(dm, PretrainDataModule) and _needs_centroids(recipe):
            warm = _warm_up(recipe, dm, model, uri, run.info.run_id, callbacks or [])
            mlflow.log_metrics(warm)
        elif _routes_by_centroids(recipe.model_config):
            log.warning("%s: centroid router without a warm-up: its centroids stay at zero", recipe.name)
        best = KeepBestWeights(t.monitor)
        stop = EarlyStopping(t.monitor, patience=t.patience, mode="min")
        trainer = _trainer(recipe, logger, [best, stop, *(callbacks or [])])
        trainer.fit(system, datamodule=dm)
        tested = trainer.test(system, datamodule=dm, verbose=False)[0]
        metrics = {k: float(v) for k, v in tested.items()}
        metrics["best_epoch"] = float(best.best_epoch)
        metrics["epochs"] = float(trainer.current_epoch)
        if best.best is not None:
            metrics[f"best_{t.monitor}"] = best.best
        metrics.update(warm)
        mlflow.log_metrics({k: v for k, v in metrics.items() if k.startswith(("test_", "best_"))})
        device = str(next(model.parameters()).device)
        mlflow.set_tags(run_tags(recipe.name, recipe.model, recipe.data.dataset, used_impls(), device))

        model = model.cpu().eval()
        meta: dict[str, Any] = {
            "name": recipe.registered_name or recipe.name,
            "model": recipe.model,
            "task": spec.task,
            "model_config": recipe.model_config.to_dict(),
            "transform": dm.transform_state(recipe.model_config.max_horizon)
            if isinstance(dm, PretrainDataModule)
            else dm.transform_state(),
            "example_input": dm.example_input(),
            "metrics": {k: v for k, v in metrics.items() if k.startswith("test_")},
            "recipe": recipe.name,
            "run_id": run.info.run_id,
        }
        if isinstance(dm, PretrainDataModule):
            meta["probabilistic"] = system.probabilistic
        with tempfile.TemporaryDirectory() as tmp:
            bundle = save_bundle(Path(tmp) / "bundle", model, meta)
            if isinstance(dm, PretrainDataModule):
                # The serving predictor (data.artifact.ForecastPredictor) is not relied on for
                # instance-scaled bundles here: the plot comes from the bundle's model itself.
                _log_corpus_forecast_plot(bundle, dm)
                # Any-variate: the example is an [L, N] array, so the logged signature is a float64 tensor
                # of shape (-1, -1) (any length, any number of variates), not the example's column names.
                example = dm.example_window()[0]
            else:
                _log_forecast_plot(bundle, dm)
                example = _example_frame(meta["example_input"], dm.variates)
            version, champion = "", False
            if register:
                version, champion = log_and_register(bundle, meta["name"], example, claim_champion=claim_champion)
    return TrainResult(run.info.run_id, meta["name"], version, champion, metrics, uri)


def _routes_by_centroids(cfg: Any) -> bool:
    """A mixture-of-experts config (not the dense variant) whose router is the centroid one."""
    return getattr(cfg, "router", None) == "centroid" and not getattr(cfg, "dense", True)


def _needs_centroids(recipe: Recipe) -> bool:
    """A corpus recipe with a warm-up whose model is a centroid-routed MoE."""
    return recipe.warmup is not None and _routes_by_centroids(recipe.model_config)


def _warm_up(
    recipe: Recipe,
    dm: PretrainDataModule,
    model: torch.nn.Module,
    uri: str,
    run_id: str,
    callbacks: list[L.Callback],
) -> dict[str, float]:
    """The dense warm-up and k-means centroids (training.pretrain.dense_warmup), logged into the run
    as `warmup_*` metrics."""
    assert recipe.warmup is not None
    w, t = recipe.warmup, recipe.trainer
    warm_recipe = replace(
        recipe,
        trainer=replace(t, max_epochs=w.epochs, limit_train_batches=w.limit_train_batches, lr=w.lr or t.lr),
    )
    logger = PrefixedMLFlowLogger("warmup_", tracking_uri=uri, run_id=run_id, experiment_name=recipe.experiment)
    return dense_warmup(
        model,
        dm,
        w,
        lr=w.lr or t.lr,
        lr_decay=t.lr_decay,
        monitor=t.monitor,
        make_trainer=lambda extra: _trainer(warm_recipe, logger, [*extra, *callbacks]),
    )


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


def _log_corpus_forecast_plot(bundle: Path, dm: PretrainDataModule) -> None:
    """Forecast vs truth on the example window (the example dataset's last test window, original
    units), from the model rebuilt out of the bundle."""
    model, _ = load_bundle(bundle)
    history, truth, names = dm.example_window()
    with torch.no_grad():
        pred = model(torch.from_numpy(history.astype(np.float32))[None])[0].numpy()
    title = f"{dm.config.example_dataset}: last test window (point forecast)"
    mlflow.log_figure(forecast_figure(history, truth, pred, names, title), "plots/forecast_vs_truth.png")


def evaluate(recipe: Recipe, model_uri: str, *, uri: str | None = None) -> dict[str, float]:
    """Protocol test metrics (scaled data, every window) of a registered or local model; for a corpus
    recipe, the metrics of its held-out test windows (MSE/MAE in dataset-standardised units, NLL)."""
    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    local = Path(model_uri)
    path = local if local.exists() else Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    if recipe.corpus is not None and isinstance(recipe.data, PretrainDataConfig):
        model, meta = load_bundle(path)
        shape = meta["transform"]
        windows = replace(recipe.data, lookback=int(shape["lookback"]), horizon=int(shape["horizon"]))
        corpus_dm = PretrainDataModule(windows, recipe.corpus)
        system = SeerSystem(model, task="forecast", lr=recipe.trainer.lr)
        trainer = _trainer(replace(recipe, data=windows), logger=False, callbacks=[])
        with torch.no_grad():
            tested = trainer.test(system, datamodule=corpus_dm, verbose=False)[0]
        return {k: float(v) for k, v in tested.items()}
    if not isinstance(recipe.data, ForecastDataConfig):
        raise ValueError(f"recipe {recipe.name} has corpus data but no corpus")
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
