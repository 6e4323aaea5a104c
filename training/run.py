"""Train, test, log and register a recipe; evaluate a registered model on its recipe's test data.

`train(recipe)`, the path of `seer train RECIPE`, in order:
1. data: the recipe's data builds its DataModule (`recipe.data.datamodule(recipe.corpus)`: one
   dataset's protocol split, or the pretraining corpus with held-out windows) and fixes the model's
   sizes (`model_dims`);
2. model: built from the registry (`inference.registry`), wrapped in the one Lightning system whose
   loss and metrics come from the task's objective (`training.tasks`);
3. inside one MLflow run: the recipe's `before_fit` hook, if any (a model family's own stage, e.g. a
   warm-up), then fit with early stopping and the best weights, then test;
4. the bundle (`inference.bundle`: config.json + safetensors, with the data's transform and example),
   the objective's plots, and the MLflow model registry (`training.tracking`).
With `checkpoints` (a folder; `seer train` passes one per registered name) the fit writes a checkpoint
every epoch and `resume=True` continues an interrupted run from it, in the same MLflow run
(`training.checkpoint`); the folder is removed once the model is registered. Every fit says, after its
first batches, how long it should take on this machine.
With `trainer.devices` × `trainer.num_nodes` > 1 every process runs `train` (`training.distributed`): all of
them load the data and fit together, and only global rank 0 opens the MLflow run, writes checkpoints and
registers; every process returns rank 0's result.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import Logger, MLFlowLogger
from torch import nn

from core.ops.dispatch import reset_used_impls, used_impls
from data.schemas import SeerDataModule
from inference.bundle import load_bundle, save_bundle
from inference.registry import get_spec
from training.checkpoint import (
    DurationEstimate,
    EpochCheckpoint,
    read_resumable,
    saved_epoch,
    write_run_info,
)
from training.distributed import launch_rank, placement, share_from_zero
from training.recipes import FitContext, Recipe, TrainerConfig
from training.system import KeepBestWeights, SeerSystem
from training.tracking import PrefixedMLFlowLogger, flatten, log_and_register, run_tags, tracking_uri


@dataclass
class TrainResult:
    run_id: str
    registered_name: str
    version: str
    champion: bool
    metrics: dict[str, float]
    tracking_uri: str
    kernels: dict[str, str]  # op -> implementation the run used (also the run's `seer.kernels` tag)
    resumed_from_epoch: int | None = None  # the checkpoint's last finished epoch (0-based), when resumed


def resolve(recipe: Recipe, dm: SeerDataModule) -> Recipe:
    """Tie the model's input/output sizes to the data (e.g. lookback, horizon, variates, calendar)."""
    return replace(recipe, model_config=recipe.model_config.replace(**dm.model_dims()))


def _trainer(t: TrainerConfig, logger: Logger | bool, callbacks: list[L.Callback], dm: SeerDataModule) -> L.Trainer:
    return L.Trainer(
        max_epochs=t.max_epochs,
        **placement(t),
        # A DataModule that shards its own loaders by rank keeps them; plain loaders get Lightning's sampler.
        use_distributed_sampler=not dm.shards_by_rank,
        precision=t.precision,  # type: ignore[arg-type]
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        limit_test_batches=t.limit_test_batches,
        gradient_clip_val=t.gradient_clip_val,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,  # training.checkpoint writes its own (safetensors, nothing pickled)
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=False,
    )


def train(
    recipe: Recipe,
    *,
    register: bool = True,
    uri: str | None = None,
    claim_champion: bool = True,
    callbacks: list[L.Callback] | None = None,
    checkpoints: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """The whole path: data → model → (before_fit) → fit (early stopping, best weights) → test → MLflow
    run → bundle → registry.

    `claim_champion=False` registers the new version without touching any alias (the retraining
    scheduler decides on `@champion` itself, after comparing); `callbacks` are extra Lightning
    callbacks for every Trainer of the run (the scheduler's cancellation check). `checkpoints`: a
    folder for a checkpoint every epoch; `resume`: continue the interrupted run saved there (its
    MLflow run, the fit from its last epoch; the `before_fit` stage is not run again: its result is in
    the saved weights).
    """
    uri = uri or tracking_uri()
    extra = list(callbacks or [])
    lead = launch_rank(recipe.trainer) == 0  # the one process that tracks and registers
    L.seed_everything(recipe.trainer.seed, workers=True, verbose=False)
    dm = recipe.data.datamodule(recipe.corpus)
    dm.setup()
    recipe = resolve(recipe, dm)
    spec = get_spec(recipe.model)
    model = spec.build(recipe.model_config)
    t = recipe.trainer
    system = _system(model, spec.task, t)
    if t.monitor not in system.monitors:
        raise ValueError(f"trainer.monitor {t.monitor} is not logged for {recipe.model} (it logs {system.monitors})")
    if resume and checkpoints is None:
        raise ValueError("resume needs the checkpoint folder of the run to continue")
    resumed_run, resume_from = read_resumable(checkpoints, recipe.to_dict()) if resume else (None, None)  # type: ignore[arg-type]
    resumed = None if resume_from is None else saved_epoch(resume_from)

    result: TrainResult | None = None
    with _tracked_run(recipe, uri, resumed_run, lead) as run_id:
        if run_id is not None and resume_from is None:
            mlflow.log_params(flatten(recipe.to_dict()))
            mlflow.log_dict(recipe.to_dict(), "config.json")
        if run_id is not None and checkpoints is not None:
            write_run_info(checkpoints, run_id, recipe.to_dict())
        logger: Logger | bool = False
        if run_id is not None:
            logger = MLFlowLogger(tracking_uri=uri, run_id=run_id, experiment_name=recipe.experiment)
        reset_used_impls()  # the run's tag names the kernels this run used, nothing earlier in the process
        before = _before_fit(recipe, dm, model, uri, run_id, extra) if resume_from is None else {}
        metrics = _fit_and_test(t, system, dm, logger, extra, checkpoints, resume_from)
        metrics.update(before)
        if run_id is not None:
            version, champion, name = _record(recipe, system, dm, metrics, run_id, register, claim_champion)
            result = TrainResult(run_id, name, version, champion, metrics, uri, used_impls(), resumed)
    if lead and checkpoints is not None:  # registered: nothing left to resume
        shutil.rmtree(checkpoints, ignore_errors=True)
    result = share_from_zero(result)
    assert result is not None  # rank 0 always has one
    return result


def _system(model: nn.Module, task: str, t: TrainerConfig) -> SeerSystem:
    return SeerSystem(
        model,
        task=task,
        lr=t.lr,
        lr_decay=t.lr_decay,
        lr_step=t.lr_step,
        optimizer=t.optimizer,
        weight_decay=t.weight_decay,
    )


@contextmanager
def _tracked_run(recipe: Recipe, uri: str, resumed_run: str | None, lead: bool) -> Iterator[str | None]:
    """The MLflow run of the training (a resumed run continues its own), opened by the lead process only:
    its id there, None in every other process of a data-parallel run."""
    if not lead:
        yield None
        return
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(recipe.experiment)
    with mlflow.start_run(run_id=resumed_run, run_name=f"{recipe.name}-h{recipe.data.horizon}") as run:
        yield run.info.run_id


def _record(
    recipe: Recipe,
    system: SeerSystem,
    dm: SeerDataModule,
    metrics: dict[str, float],
    run_id: str,
    register: bool,
    claim_champion: bool,
) -> tuple[str, bool, str]:
    """Into the active run: the test and summary metrics, the tags, the bundle, the figures, the registered
    version. Returns (version, became champion, registered name)."""
    mlflow.log_metrics({k: v for k, v in metrics.items() if k.startswith(("test_", "best_"))})
    device = str(next(system.model.parameters()).device)
    mlflow.set_tags(run_tags(recipe.name, recipe.model, recipe.data.dataset, used_impls(), device))
    meta = _bundle_meta(recipe, system, dm, metrics, run_id)
    version, champion = _save_and_register(system, dm, meta, register=register, claim_champion=claim_champion)
    return version, champion, meta["name"]


def _before_fit(
    recipe: Recipe, dm: SeerDataModule, model: nn.Module, uri: str, run_id: str | None, callbacks: list[L.Callback]
) -> dict[str, float]:
    """Run the recipe's `before_fit` hook inside the run; its summary metrics are logged to the run (`run_id`
    None: a process other than rank 0, whose loggers write nothing)."""
    if recipe.before_fit is None:
        return {}

    def make_logger(prefix: str) -> Logger:
        return PrefixedMLFlowLogger(prefix, tracking_uri=uri, run_id=run_id, experiment_name=recipe.experiment)

    stage = f"the {recipe.before_fit.section} stage"

    def make_trainer(t: TrainerConfig, logger: Logger | bool, extra: list[L.Callback]) -> L.Trainer:
        return _trainer(t, logger if run_id is not None else False, [*extra, *callbacks, DurationEstimate(stage)], dm)

    metrics = recipe.before_fit(FitContext(recipe, dm, model, make_trainer, make_logger))
    if metrics and run_id is not None:
        mlflow.log_metrics(metrics)
    return metrics


def _fit_and_test(
    t: TrainerConfig,
    system: SeerSystem,
    dm: SeerDataModule,
    logger: Logger | bool,
    callbacks: list[L.Callback],
    checkpoints: Path | None = None,
    resume_from: Path | None = None,
) -> dict[str, float]:
    """Fit with early stopping on `t.monitor` (the best validation weights restored), then test; the test
    metrics plus `best_epoch`, `epochs` and `best_<monitor>`. With `checkpoints`, a checkpoint every
    epoch; with `resume_from`, the fit continues from that checkpoint."""
    best = KeepBestWeights(t.monitor)
    stop = EarlyStopping(t.monitor, patience=t.patience, mode="min")
    extra: list[L.Callback] = [DurationEstimate("training")]
    if checkpoints is not None:
        extra.append(EpochCheckpoint(checkpoints, resume_from))
    trainer = _trainer(t, logger, [best, stop, *callbacks, *extra], dm)
    trainer.fit(system, datamodule=dm)
    tested = trainer.test(system, datamodule=dm, verbose=False)[0]
    metrics = {k: float(v) for k, v in tested.items()}
    metrics["best_epoch"] = float(best.best_epoch)
    metrics["epochs"] = float(trainer.current_epoch)
    if best.best is not None:
        metrics[f"best_{t.monitor}"] = best.best
    return metrics


def _bundle_meta(
    recipe: Recipe, system: SeerSystem, dm: SeerDataModule, metrics: dict[str, float], run_id: str
) -> dict[str, Any]:
    """The bundle's meta: names, config, the data's transform and example, test metrics, task fields."""
    model = system.model.cpu().eval()
    return {
        "name": recipe.registered_name or recipe.name,
        "model": recipe.model,
        "task": system.task,
        "model_config": recipe.model_config.to_dict(),
        "transform": dm.transform_state(model),
        "example_input": dm.example_input(),
        "metrics": {k: v for k, v in metrics.items() if k.startswith("test_")},
        "recipe": recipe.name,
        "run_id": run_id,
        **system.objective.bundle_meta(model),
    }


def _save_and_register(
    system: SeerSystem, dm: SeerDataModule, meta: dict[str, Any], *, register: bool, claim_champion: bool
) -> tuple[str, bool]:
    """Save the bundle, log the objective's plots (made from the bundle), and register it; returns
    (version, became_champion), ("", False) without `register`."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(Path(tmp) / "bundle", system.model, meta)
        for path, figure in system.objective.figures(bundle, dm.evaluation_example()).items():
            mlflow.log_figure(figure, path)
        if not register:
            return "", False
        return log_and_register(bundle, meta["name"], dm.signature_example(), claim_champion=claim_champion)


def evaluate(recipe: Recipe, model_uri: str, *, uri: str | None = None) -> dict[str, float]:
    """The test metrics of a registered or local model on its recipe's test data, shaped like the
    bundle (its lookback, horizon, variates): every window of a dataset's test split (scaled data), or
    a corpus recipe's held-out test windows."""
    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    local = Path(model_uri)
    path = local if local.exists() else Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    model, meta = load_bundle(path)
    data = recipe.data.for_bundle(meta["transform"])
    dm = data.datamodule(recipe.corpus)
    dm.setup()
    system = SeerSystem(model, task=meta["task"], lr=recipe.trainer.lr)
    trainer = _trainer(recipe.trainer, logger=False, callbacks=[], dm=dm)
    with torch.no_grad():
        tested = trainer.test(system, datamodule=dm, verbose=False)[0]
    return {k: float(v) for k, v in tested.items()}
