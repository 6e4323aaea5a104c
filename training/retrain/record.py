"""What one run of a job reports: its `JobOutcome`, and its MLflow run in experiment `seer-retrain`.

The run carries params (job, data, files, rows, what the task's holdout describes, ...), metrics
(`champion_<m>`, `challenger_<m>` for every holdout metric, `improvement`), tags `seer.retrain.*` and
`decision.json`; a failed run ends FAILED with `seer.retrain.error` and an `error.txt` traceback.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from training.retrain.promote import DECISIONS

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from training.retrain.jobs import RetrainJob
    from training.retrain.promote import Verdict
    from training.tasks.holdout import FreshData, HoldoutWindows

EXPERIMENT = "seer-retrain"
TAG = "seer.retrain."


@dataclass
class JobOutcome:
    job: str
    status: str  # first | promoted | kept | failed | skipped | cancelled (never started)
    model: str = ""
    run_id: str | None = None
    challenger_version: str | None = None
    champion_before: str | None = None
    champion_after: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    metric: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (*DECISIONS, "skipped")

    def summary(self) -> str:
        where = f" (run {self.run_id} in experiment {EXPERIMENT})" if self.run_id else ""
        if self.status == "failed":
            return f"job {self.job}: FAILED, no alias moved: {self.error}{where}"
        if self.status in ("skipped", "cancelled"):
            return f"job {self.job}: {self.status}{': ' + self.error if self.error else ''}"
        m = self.metric
        chall = self.scores.get(f"challenger_{m}")
        champ = self.scores.get(f"champion_{m}")
        new = f"models:/{self.model}/{self.challenger_version}"
        if self.status == "first":
            return f"job {self.job}: first model, {new} is now @champion ({m} {chall:.4g}){where}"
        stays = f"@challenger; @champion stays v{self.champion_after}"
        verdict = "now @champion" if self.status == "promoted" else stays
        return f"job {self.job}: {self.status}, {new} {verdict} ({m} {chall:.4g} vs champion {champ:.4g}){where}"


def _experiment_id(client: MlflowClient) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        try:
            return str(client.create_experiment(EXPERIMENT))
        except MlflowException:  # created meanwhile by another job
            exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return str(exp.experiment_id)


def open_run(client: MlflowClient, job: RetrainJob) -> str:
    """A new run of the job in experiment `seer-retrain`; its id."""
    run = client.create_run(
        _experiment_id(client),
        run_name=f"{job.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}",
        tags={f"{TAG}job": job.name, f"{TAG}model": job.registered_name, f"{TAG}metric": job.metric},
    )
    return str(run.info.run_id)


def log_inputs(
    client: MlflowClient,
    run_id: str,
    job: RetrainJob,
    fresh: FreshData,
    windows: HoldoutWindows,
    champion_before: str | None,
) -> None:
    """The job's settings and what it read, as params; the champion it started from, as a tag."""
    from mlflow.entities import Param

    params = {
        "job": job.name,
        "recipe": job.recipe,
        "model": job.registered_name,
        "data": job.data,
        "files": len(fresh.files),
        "rows": fresh.rows,
        **fresh.describe,
        "holdout_windows": windows.count,
        **{f"holdout_{k}": v for k, v in windows.describe.items()},
        "metric": job.metric,
        "min_improvement": job.min_improvement,
        "overrides": ",".join(job.overrides) or "-",
        "smoke": job.smoke,
        "cron": job.cron,
    }
    client.log_batch(run_id, params=[Param(k, str(v)[:500]) for k, v in params.items()])
    client.set_tag(run_id, f"{TAG}champion_version", champion_before or "none")


def log_challenger(client: MlflowClient, run_id: str, job: RetrainJob, version: str, challenger_run: str) -> None:
    """Link the job's run and the challenger's training run both ways."""
    client.set_tag(run_id, f"{TAG}challenger_version", version)
    client.set_tag(run_id, f"{TAG}challenger_run_id", challenger_run)
    client.set_tag(challenger_run, f"{TAG}job", job.name)
    client.set_tag(challenger_run, f"{TAG}data", job.data)


def log_verdict(
    client: MlflowClient,
    run_id: str,
    out: JobOutcome,
    verdict: Verdict,
    job: RetrainJob,
    fresh: FreshData,
    windows: HoldoutWindows,
) -> dict[str, Any]:
    """Scores, improvement and decision tags (written before any alias moves); returns `decision.json`."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = dict(out.scores)
    if verdict.improvement is not None:
        metrics["improvement"] = verdict.improvement
    tags = [RunTag(f"{TAG}decision", verdict.decision), RunTag(f"{TAG}champion_after", str(verdict.champion_after))]
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()], tags=tags)
    return {
        "job": job.name,
        "model": out.model,
        "decision": verdict.decision,
        "alias_moved": verdict.alias,
        "challenger_version": out.challenger_version,
        "champion_before": out.champion_before,
        "champion_after": verdict.champion_after,
        "metric": job.metric,
        "min_improvement": job.min_improvement,
        "improvement": verdict.improvement,
        "scores": out.scores,
        "holdout": {"windows": windows.count, **windows.describe},
        "files": [str(f) for f in fresh.files],
    }


def log_failure(client: MlflowClient, run_id: str, error: BaseException, message: str) -> None:
    """Mark the run FAILED with the error as a tag and its traceback as `error.txt`."""
    client.set_tag(run_id, f"{TAG}decision", "failed")
    client.set_tag(run_id, f"{TAG}error", message[:4000])
    client.log_text(run_id, "".join(traceback.format_exception(error)), "error.txt")
    client.set_terminated(run_id, "FAILED")


def finish(client: MlflowClient, run_id: str, record: dict[str, Any], started: float) -> None:
    """`decision.json`, the duration, and the run FINISHED."""
    client.log_dict(run_id, record, "decision.json")
    client.log_metric(run_id, "duration_s", time.time() - started)
    client.set_terminated(run_id, "FINISHED")
