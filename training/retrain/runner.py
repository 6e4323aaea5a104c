"""One run of a job, step by step: fresh data → challenger → both scored on one holdout → decision → alias.

Everything that depends on the task (reading the data, the holdout windows, the scores) comes from the
recipe's task through `training.tasks.holdout_for`; models are loaded by `inference.predictor.
load_predictor`, which picks the predictor from the bundle's task. A failure at any step leaves the
MLflow run FAILED and moves no alias; cancellation is checked between steps and at every batch.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.retrain.jobs import RetrainJob, build_recipe
from training.retrain.locks import job_lock, run_slot
from training.retrain.promote import CHAMPION, aliases, judge, move_alias
from training.retrain.record import (
    JobOutcome,
    finish,
    log_challenger,
    log_failure,
    log_inputs,
    log_verdict,
    open_run,
)
from training.tracking import tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from training.retrain.jobs import JobsFile
    from training.run import TrainResult
    from training.tasks.holdout import FreshData, Holdout, HoldoutWindows

log = logging.getLogger("seer.retrain")


class RetrainCancelled(RuntimeError):
    """A shutdown was requested while the job ran."""


def check(cancel: threading.Event | None, where: str) -> None:
    """Raise `RetrainCancelled` if a shutdown was requested (a checkpoint between steps)."""
    if cancel is not None and cancel.is_set():
        raise RetrainCancelled(f"cancelled {where} (shutdown requested)")


def cancel_callback(cancel: threading.Event) -> Any:
    """A Lightning callback that checks for a shutdown at every training, validation and test batch."""
    import lightning as L

    class CancelOnShutdown(L.Callback):
        """Raises at the next batch once a shutdown is requested (Lightning re-raises it)."""

        def _stop(self, *args: Any, **kwargs: Any) -> None:
            check(cancel, "during training")

        on_train_batch_start = on_validation_batch_start = on_test_batch_start = _stop

    return CancelOnShutdown()


def run_job(job: RetrainJob, *, uri: str | None = None, cancel: threading.Event | None = None) -> JobOutcome:
    """One run of a job (see `training.retrain`); never raises, never overlaps itself."""
    uri = uri or tracking_uri()
    with job_lock(job, uri) as held:
        if not held:
            log.warning("job %s: a run for model %s is already in progress; skipped", job.name, job.registered_name)
            return JobOutcome(job.name, "skipped", job.registered_name, error="already running")
        with run_slot(job.name, cancel) as slot:
            if not slot:
                return JobOutcome(job.name, "cancelled", job.registered_name, error="shutdown before it started")
            return _run_locked(job, uri, cancel)


def run_once(jobs_file: JobsFile, *, uri: str | None = None, cancel: threading.Event | None = None) -> list[JobOutcome]:
    """Every job once, in file order; after a shutdown request the remaining jobs are `cancelled`."""
    outcomes = []
    for job in jobs_file.jobs:
        if cancel is not None and cancel.is_set():
            outcomes.append(JobOutcome(job.name, "cancelled", job.registered_name, error="shutdown before it started"))
            continue
        outcomes.append(run_job(job, uri=uri, cancel=cancel))
    return outcomes


def _run_locked(job: RetrainJob, uri: str, cancel: threading.Event | None) -> JobOutcome:
    """Open the job's MLflow run, run the steps, and close the run FINISHED or FAILED."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    out = JobOutcome(job.name, "failed", job.registered_name, metric=job.metric)
    started = time.time()
    log.info("job %s: start (model %s, data %s, tracking %s)", job.name, out.model, job.data, uri)
    try:
        run_id = out.run_id = open_run(client, job)
    except Exception as e:
        out.error = f"cannot create the MLflow run at {uri}: {type(e).__name__}: {e}"
        log.error("job %s: %s", job.name, out.error)
        return out
    try:
        record = _steps(job, client, run_id, uri, cancel, out)
    except BaseException as e:  # cancellation and Ctrl-C too: the run must not stay RUNNING
        _fail(client, run_id, out, e)
        if not isinstance(e, Exception):
            raise
        return out
    try:  # after the alias moved, nothing may turn the job into a failure
        finish(client, run_id, record, started)
    except Exception as e:
        log.warning("job %s: alias moved=True but finishing run %s failed: %s", job.name, run_id, e)
    return out


def _steps(
    job: RetrainJob, client: MlflowClient, run_id: str, uri: str, cancel: threading.Event | None, out: JobOutcome
) -> dict[str, Any]:
    """The job's steps; fills `out` as they go and returns `decision.json`. Raises on any failure."""
    from training.tasks import holdout_for

    check(cancel, "before training")
    recipe = build_recipe(job)
    holdout = holdout_for(recipe.task)
    fresh = holdout.read(job.data)
    windows = holdout.windows(fresh, recipe, job.holdout_windows)  # fails before training if it does not fit
    out.champion_before = aliases(client, out.model).get(CHAMPION)
    log_inputs(client, run_id, job, fresh, windows, out.champion_before)

    with tempfile.TemporaryDirectory(prefix="seer-retrain-") as tmp_dir:
        tmp = Path(tmp_dir)
        result = _train_challenger(job, holdout, fresh, tmp, uri, cancel)
        version = out.challenger_version = result.version
        log_challenger(client, run_id, job, version, result.run_id)
        check(cancel, "after training")
        out.scores = _scores(holdout, fresh, windows, out, version, uri, tmp)

    verdict = judge(out.scores, job.metric, job.min_improvement, version, out.champion_before)
    record = log_verdict(client, run_id, out, verdict, job, fresh, windows)
    check(cancel, "before moving the alias")
    move_alias(client, out.model, verdict, version, out.champion_before)
    out.status, out.champion_after = verdict.decision, verdict.champion_after
    log.info("%s", out.summary())
    return record


def _train_challenger(
    job: RetrainJob, holdout: Holdout, fresh: FreshData, tmp: Path, uri: str, cancel: threading.Event | None
) -> TrainResult:
    """Train and register a challenger on the fresh data; no alias is touched (`claim_champion=False`)."""
    from training.run import train  # looked up at call time, so a test can stand in for training

    dataset = holdout.write(fresh, tmp, job.name)
    log.info("job %s: training a challenger on %d rows from %d file(s)", job.name, fresh.rows, len(fresh.files))
    callbacks = [cancel_callback(cancel)] if cancel is not None else []
    return train(build_recipe(job, dataset=dataset), uri=uri, claim_champion=False, callbacks=callbacks)


def _scores(
    holdout: Holdout, fresh: FreshData, windows: HoldoutWindows, out: JobOutcome, version: str, uri: str, tmp: Path
) -> dict[str, float]:
    """`challenger_<m>` (version `version`) and, with a champion, `champion_<m>` for every holdout metric."""
    challenger = _load_version(out.model, version, uri, tmp)
    scores = {f"challenger_{k}": v for k, v in holdout.score(challenger, fresh, windows).items()}
    if out.champion_before is None:
        return scores
    champion = _load_version(out.model, out.champion_before, uri, tmp)
    why = _incomparable(holdout, champion, challenger)
    if why is not None:
        raise ValueError(f"champion v{out.champion_before} {why}")
    scores.update({f"champion_{k}": v for k, v in holdout.score(champion, fresh, windows).items()})
    return scores


def _incomparable(holdout: Holdout, champion: Any, challenger: Any) -> str | None:
    if champion.task != challenger.task:
        return f"is a {champion.task} model, the challenger a {challenger.task} model: not comparable"
    return holdout.incomparable(champion, challenger)


def _load_version(name: str, version: str, uri: str, tmp: Path) -> Any:
    """The predictor of registered version `name`/`version` (downloaded under `tmp`), by its task."""
    import mlflow

    from inference.predictor import load_predictor

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp / f"v{version}"), tracking_uri=uri
    )
    return load_predictor(local)


def _fail(client: MlflowClient, run_id: str, out: JobOutcome, error: BaseException) -> None:
    """Record a failed run: FAILED in MLflow with the error and its traceback; no alias has moved."""
    out.status = "failed"
    out.error = f"{type(error).__name__}: {error}"
    log.error("job %s failed, no alias moved: %s", out.job, out.error)
    try:
        log_failure(client, run_id, error, out.error)
    except Exception as log_error:  # the tracking server itself is the problem
        log.error("job %s: could not record the failure in run %s: %s", out.job, run_id, log_error)
