"""Scheduled retraining with champion/challenger promotion (DESIGN section 6, last point).

`seer retrain --jobs jobs.yaml` runs every job on its cron schedule until SIGINT/SIGTERM;
`seer retrain --jobs jobs.yaml --once` runs every job once, now, and exits 1 if any failed.

The jobs file (validated by the pydantic models below; every error names the field and the job)::

    timezone: UTC                # cron expressions are read in this zone (default UTC)
    misfire_grace_time: 3600     # s; a run the scheduler could not start on time still runs
                                 # if it is at most this late (APScheduler's default is 1 s)
    jobs:
      - name: etth1-nightly      # unique; [A-Za-z0-9_.-]
        recipe: itransformer-etth1
        data: /data/*.csv        # a path or a glob of CSV/Parquet files, wide (`date` + variates)
                                 # or long (`unique_id, ds, y`); relative to the jobs file's folder
        cron: "0 3 * * *"        # crontab: minute hour day month day-of-week (0/7 = Sunday), or @daily..
        holdout_windows: 64      # the W most recent forecast windows of the fresh data (below)
        metric: mse              # mse | mae, in the data's original units
        min_improvement: 0.02    # relative: the challenger must be at least 2 % better
        overrides: [trainer.max_epochs=3]   # optional, `seer train --set` style
        model: itransformer-etth1           # optional registered name (default: the recipe's)
        smoke: false             # optional: the recipe's tiny config (demos and checks)

A bare list of jobs is accepted too. What one run of a job does:

1. Fresh data: every file the pattern matches (sorted by name) is read and normalised to the wide
   frame; they are concatenated, deduplicated by `date` (a later file in name order wins, so a
   correction file overrides) and sorted. The frame is written to a temporary Parquet file and the
   recipe is trained on it (so the usual 70/10/20 chronological split applies).
2. Holdout: the last `holdout_windows` forecast origins of the fresh data. With T rows and horizon
   H, origin o = T-H-W+1 .. T-H takes the `lookback` rows before o as history (each model its own
   lookback) and rows [o, o+H) as truth, so the last window ends on the last row. The holdout's
   targets must all lie in the challenger's test rows (its last 20 %), else the job fails before
   training and says how many windows fit: the challenger never trained or early-stopped on them.
3. Challenger: `training.run.train` on the fresh data, registered as a new version of the model
   WITHOUT touching any alias (`claim_champion=False`).
4. Comparison: champion (the version `@champion` pointed at when the job started) and challenger
   forecast the same holdout windows through `data.artifact.ForecastPredictor.predict` — each with
   its own stored scaler — and are scored in ORIGINAL units (MSE/MAE over every element of every
   window). Each model's scaled test metrics are not comparable (different scalers, different
   test rows); these are. Large-valued variates weigh more, as they do in the units users see.
5. Decision: no champion yet → `first` (the challenger becomes `@champion`);
   challenger < champion × (1 − min_improvement) → `promoted` (`@champion` moves to it);
   else `kept` (`@challenger` points at it, `@champion` stays). If `@champion` was moved by
   someone else meanwhile, the job fails instead of overwriting it. A non-finite score, a horizon
   or variate mismatch, a champion that cannot be loaded: the job fails.
6. Record: an MLflow run in experiment `seer-retrain` with params (job, data, files, rows, ...),
   metrics (`champion_mse`, `challenger_mse`, `..._mae`, `improvement`), tags `seer.retrain.job`,
   `seer.retrain.decision` (first|promoted|kept|failed), `seer.retrain.model`,
   `seer.retrain.champion_version` (before), `seer.retrain.challenger_version`,
   `seer.retrain.champion_after`, `seer.retrain.challenger_run_id`, and `decision.json`. Every
   metric and tag is written before the alias moves. A failure at any step leaves the run FAILED
   with `seer.retrain.error` and an `error.txt` artifact (the traceback), and moves no alias (a
   challenger version may already be registered; it then carries no alias).

No overlap: a run holds an in-process lock and a file lock (`$SEER_RETRAIN_LOCK_DIR`, default
`<tmp>/seer-retrain`) keyed by tracking URI + registered model, so a job never overlaps itself
(nor another job on the same model, nor a second `seer retrain` process on this machine); the
loser returns `skipped` at once. Within one process, runs of different jobs also take turns
(training uses every core anyway). The scheduler adds `max_instances=1` and `coalesce=True`.

Stopping: the first SIGINT/SIGTERM stops scheduling, cancels a running job at its next checkpoint
(every training/validation/test batch, and between steps) — its run ends FAILED "cancelled", no
alias moves — and waits for it; a second signal exits at once.

Scheduler library: APScheduler 3.x (pinned `<4`). It is mature and widely deployed, runs
in-process (no broker or database, unlike Celery beat or RQ), has cron triggers with time zones,
and has exactly the guards this needs per job: `max_instances` (no overlap), `coalesce` (a backlog
of missed runs collapses into one) and `misfire_grace_time`. APScheduler 4 is still pre-release
with a different API; `schedule` has no cron syntax or misfire handling; a system crontab would
need a second process manager inside the container. Two 3.x traps are handled here: its default
misfire grace is 1 s (set from the jobs file), and its `from_crontab` numbers weekdays from Monday
(issue 286), so crontab's day-of-week field is translated to day names (`parse_cron`).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import logging
import math
import os
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from data.series.readers import DataFormatError, read_series
from training.tracking import tracking_uri

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from mlflow import MlflowClient

    from inference.tasks.forecast import ForecastPredictor
    from training.recipes import Recipe

log = logging.getLogger("seer.retrain")

EXPERIMENT = "seer-retrain"
CHAMPION = "champion"
CHALLENGER = "challenger"
TAG = "seer.retrain."
DECISIONS = ("first", "promoted", "kept")


class JobsFileError(ValueError):
    """The jobs file is missing, not YAML, or not a valid jobs file; the message says what to fix."""


class RetrainCancelled(RuntimeError):
    """A shutdown was requested while the job ran."""


# ---------------------------------------------------------------------------------------- cron

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _dow(token: str) -> int:
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    if token in _DOW_NAMES:
        return _DOW_NAMES.index(token)
    raise ValueError(f"day of week {token!r}: use 0-7 (0 and 7 are Sunday) or sun..sat")


def crontab_day_of_week(expr: str) -> str:
    """Crontab's day-of-week field (0 or 7 = Sunday) as APScheduler 3.x day names.

    APScheduler 3.x reads weekday numbers from Monday = 0, crontab from Sunday = 0; names mean the
    same day in both, so the field is expanded to its set of days and written back as names.
    """
    if expr == "*":
        return "*"
    days: set[int] = set()
    for item in expr.lower().split(","):
        span, slash, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() else 0
        if slash and step < 1:
            raise ValueError(f"day of week {item!r}: the step must be a positive integer")
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            a, b = span.split("-", 1)
            lo, hi = _dow(a), _dow(b)
        else:
            lo = _dow(span)
            hi = 6 if slash else lo
        if lo > hi:
            raise ValueError(f"day of week {item!r}: the range runs backwards")
        days.update(d % 7 for d in range(lo, hi + 1, step or 1))
    return "*" if len(days) == 7 else ",".join(_DOW_NAMES[d] for d in sorted(days))


def parse_cron(expr: str, tz: Any = "UTC") -> CronTrigger:
    """A standard 5-field crontab expression (or @daily, @hourly, ..) as an APScheduler trigger.

    Same fields as `CronTrigger.from_crontab`, with crontab's weekday numbering. A crontab that
    restricts both day-of-month and day-of-week fires when EITHER matches; APScheduler would
    require both, so that combination is refused rather than silently meaning something else.
    """
    from apscheduler.triggers.cron import CronTrigger

    text = _MACROS.get(expr.strip().lower(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expr!r}: expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    minute, hour, day, month, dow = fields
    if day != "*" and dow != "*":
        raise ValueError(
            f"cron {expr!r}: restrict day-of-month or day-of-week, not both (crontab ORs them, "
            "the scheduler would AND them); use two jobs"
        )
    try:
        return CronTrigger(
            minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_day_of_week(dow), timezone=tz
        )
    except ValueError as e:
        raise ValueError(f"cron {expr!r}: {e}") from e


# ------------------------------------------------------------------------------------ jobs file


class RetrainJob(BaseModel):
    """One retraining job of the jobs file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    recipe: str
    data: str = Field(min_length=1, description="a CSV/Parquet path or glob, wide or long")
    cron: str
    holdout_windows: int = Field(64, ge=1, description="the most recent forecast windows used to compare")
    metric: Literal["mse", "mae"] = "mse"
    min_improvement: float = Field(0.0, ge=0.0, lt=1.0, description="relative, e.g. 0.02 = 2 % better")
    overrides: list[str] = Field(default_factory=list)
    model: str | None = Field(None, min_length=1, description="registered model name (default: the recipe's)")
    smoke: bool = False

    _recipe: Any = PrivateAttr(default=None)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        parse_cron(v)
        return v

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, v: list[str]) -> list[str]:
        for item in v:
            if item.split("=", 1)[0].strip() == "data.dataset":
                raise ValueError("data.dataset cannot be overridden: the job's `data:` is the dataset")
        return v

    @model_validator(mode="after")
    def _resolves(self) -> RetrainJob:
        self._recipe = build_recipe(self)  # unknown recipe or bad override: the message says which
        return self

    @property
    def registered_name(self) -> str:
        return str(self._recipe.registered_name or self._recipe.name)


class JobsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = "UTC"
    misfire_grace_time: int = Field(3600, ge=1, description="seconds a late run may still start")
    jobs: list[RetrainJob] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v

    @model_validator(mode="after")
    def _unique(self) -> JobsFile:
        names = [j.name for j in self.jobs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"job names must be unique; repeated: {', '.join(dup)}")
        return self


def build_recipe(job: RetrainJob, dataset: str | None = None) -> Recipe:
    """The job's recipe: `smoke` first (the tiny config), then the overrides, then name and data."""
    from training.recipes import apply_overrides, get_recipe, smoke

    try:
        recipe = get_recipe(job.recipe)
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    if recipe.corpus is not None:
        raise ValueError(
            f"recipe {job.recipe!r} pretrains on the corpus mixture; retraining on fresh files takes a "
            "dataset recipe (e.g. itransformer-etth1)"
        )
    if job.smoke:
        recipe = smoke(recipe)
    recipe = apply_overrides(recipe, ["trainer.progress_bar=false", *job.overrides])
    if job.model:
        recipe = dataclasses.replace(recipe, registered_name=job.model)
    if dataset is not None:
        recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, dataset=dataset))
    return recipe


def _where(loc: tuple[Any, ...], raw: Any) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int) and isinstance(raw, dict):
        jobs = raw.get("jobs")
        if isinstance(jobs, list) and loc[1] < len(jobs) and isinstance(jobs[loc[1]], dict):
            name = jobs[loc[1]].get("name")
            if name:
                out = out.replace(f"jobs[{loc[1]}]", f"jobs[{loc[1]}] ({name})", 1)
    return out or "(top level)"


def load_jobs(path: str | Path) -> JobsFile:
    """Read and validate a jobs file; relative `data:` paths are taken from the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"jobs file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise JobsFileError(f"{path}: not valid YAML: {e}") from None
    if isinstance(raw, list):
        raw = {"jobs": raw}
    if not isinstance(raw, dict):
        raise JobsFileError(f"{path}: expected a mapping with `jobs:` (or a list of jobs), got {type(raw).__name__}")
    try:
        jobs_file = JobsFile.model_validate(raw)
    except ValidationError as e:
        lines = [f"  {_where(tuple(x['loc']), raw)}: {x['msg'].removeprefix('Value error, ')}" for x in e.errors()]
        raise JobsFileError(f"{path}: invalid jobs file:\n" + "\n".join(lines)) from None
    base = path.resolve().parent
    for job in jobs_file.jobs:
        if not Path(job.data).is_absolute():
            job.data = str(base / job.data)
    return jobs_file


# ----------------------------------------------------------------------------------------- data


def resolve_files(pattern: str) -> list[Path]:
    """The files a `data:` path or glob matches, sorted by name; none is an error."""
    if glob.has_magic(pattern):
        files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    else:
        files = [Path(pattern)] if Path(pattern).is_file() else []
    if not files:
        raise FileNotFoundError(f"no data files match {pattern!r}")
    return files


def load_fresh(pattern: str) -> tuple[pl.DataFrame, list[Path]]:
    """Every matching file as one wide frame: concatenated, deduplicated by date (later file wins), sorted."""
    files = resolve_files(pattern)
    frames = []
    for f in files:
        try:
            frames.append(read_series(f))
        except Exception as e:
            raise DataFormatError(f"{f}: {e}") from e
    columns = frames[0].columns
    for f, frame in zip(files, frames, strict=True):
        if set(frame.columns) != set(columns):
            raise DataFormatError(
                f"{f} has columns {frame.columns}, {files[0]} has {columns}: every file must hold the same variates"
            )
    frame = pl.concat([fr.select(columns) for fr in frames], how="vertical")
    frame = frame.unique(subset="date", keep="last", maintain_order=True).sort("date")
    nulls = [c for c in columns if frame[c].null_count()]
    if nulls:
        raise DataFormatError(f"missing values in {nulls} after combining {len(files)} file(s) matching {pattern!r}")
    return frame, files


def holdout_origins(n_rows: int, lookback: int, horizon: int, windows: int) -> range:
    """Forecast origins of the holdout: the last `windows` ones, all inside the challenger's test rows."""
    from data.series.protocols import ratio_split

    split = ratio_split(n_rows, lookback)  # the split `train()` uses for a file dataset
    first_test_target = split.test[0] + lookback
    origins = range(n_rows - horizon - windows + 1, n_rows - horizon + 1)
    if origins.start < first_test_target:
        fit = n_rows - horizon - first_test_target + 1
        raise ValueError(
            f"holdout_windows={windows} does not fit in the challenger's test rows: with {n_rows} rows and "
            f"horizon {horizon}, at most {max(fit, 0)} windows end inside the last {n_rows - first_test_target} "
            "rows; lower holdout_windows or add data"
        )
    return origins


def holdout_scores(predictor: ForecastPredictor, frame: pl.DataFrame, origins: range) -> dict[str, float]:
    """MSE and MAE in original units over every element of every holdout window."""
    missing = [v for v in predictor.variates if v not in frame.columns]
    if missing:
        raise ValueError(f"{predictor.name}: variates {missing} are not in the fresh data")
    lb, h = predictor.lookback, predictor.horizon
    if origins.start < lb:
        raise ValueError(f"{predictor.name}: lookback {lb} reaches before the first row of the fresh data")
    if origins.stop - 1 + h > len(frame):
        raise ValueError(f"{predictor.name}: horizon {h} runs past the last row of the fresh data")
    values = frame.select(predictor.variates).to_numpy().astype(np.float64)
    dates = frame["date"].to_list()
    sse = sae = 0.0
    count = 0
    starts = list(origins)
    for i in range(0, len(starts), 256):
        chunk = starts[i : i + 256]
        history = np.stack([values[o - lb : o] for o in chunk])
        truth = np.stack([values[o : o + h] for o in chunk])
        stamps = [dates[o - lb : o] for o in chunk] if predictor.uses_timestamps else None
        err = predictor.predict(history, stamps) - truth
        sse += float(np.square(err).sum())
        sae += float(np.abs(err).sum())
        count += err.size
    return {"mse": sse / count, "mae": sae / count}


def decide(champion: float | None, challenger: float, min_improvement: float) -> tuple[str, float | None]:
    """(`first` | `promoted` | `kept`, relative improvement): promoted iff challenger < champion × (1 − margin)."""
    if not math.isfinite(challenger):
        raise ValueError(f"the challenger's holdout score is {challenger}")
    if champion is None:
        return "first", None
    if not math.isfinite(champion):
        raise ValueError(f"the champion's holdout score is {champion}")
    improvement = (champion - challenger) / champion if champion > 0 else 0.0  # a perfect champion: a tie at best
    promoted = challenger < champion and improvement >= min_improvement
    return ("promoted" if promoted else "kept"), improvement


# ---------------------------------------------------------------------------------------- locks


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()
_RUN_SLOT = threading.Lock()  # one training at a time per process
_RUNNING: set[str] = set()


def _lock_key(job: RetrainJob, uri: str) -> str:
    digest = hashlib.sha1(f"{uri}\n{job.registered_name}".encode()).hexdigest()[:12]
    return f"{job.registered_name}-{digest}"


def lock_dir() -> Path:
    return Path(os.environ.get("SEER_RETRAIN_LOCK_DIR") or Path(tempfile.gettempdir()) / "seer-retrain")


@contextmanager
def job_lock(job: RetrainJob, uri: str) -> Iterator[bool]:
    """Yields True while this caller holds the job's lock, False (at once) if a run already holds it."""
    from filelock import FileLock, Timeout

    key = _lock_key(job, uri)
    with _THREAD_LOCKS_GUARD:
        tlock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    if not tlock.acquire(blocking=False):
        yield False
        return
    try:
        directory = lock_dir()
        directory.mkdir(parents=True, exist_ok=True)
        flock = FileLock(str(directory / f"{key}.lock"), thread_local=False)
        try:
            flock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            flock.release()
    finally:
        tlock.release()


# ------------------------------------------------------------------------------------------ runs


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
    metric: str = "mse"
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


def _check(cancel: threading.Event | None, where: str) -> None:
    if cancel is not None and cancel.is_set():
        raise RetrainCancelled(f"cancelled {where} (shutdown requested)")


def _cancel_callback(cancel: threading.Event) -> Any:
    import lightning as L

    class CancelOnShutdown(L.Callback):
        """Raises at the next batch once a shutdown is requested (Lightning re-raises it)."""

        def _stop(self, *args: Any, **kwargs: Any) -> None:
            _check(cancel, "during training")

        on_train_batch_start = on_validation_batch_start = on_test_batch_start = _stop

    return CancelOnShutdown()


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """The model's aliases; {} if the model is not registered yet (any other error propagates)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {k: str(v) for k, v in (model.aliases or {}).items()}


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


def _load_version(name: str, version: str, uri: str, tmp: Path) -> ForecastPredictor:
    import mlflow

    from inference.tasks.forecast import ForecastPredictor

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp / f"v{version}"), tracking_uri=uri
    )
    return ForecastPredictor.load(local)


def run_job(job: RetrainJob, *, uri: str | None = None, cancel: threading.Event | None = None) -> JobOutcome:
    """One run of a job (see the module docstring); never raises, never overlaps itself."""
    uri = uri or tracking_uri()
    with job_lock(job, uri) as held:
        if not held:
            log.warning("job %s: a run for model %s is already in progress; skipped", job.name, job.registered_name)
            return JobOutcome(job.name, "skipped", job.registered_name, error="already running")
        while not _RUN_SLOT.acquire(timeout=1.0):  # another job of this process is training
            if cancel is not None and cancel.is_set():
                return JobOutcome(job.name, "cancelled", job.registered_name, error="shutdown before it started")
        try:
            _RUNNING.add(job.name)
            return _run_locked(job, uri, cancel)
        finally:
            _RUNNING.discard(job.name)
            _RUN_SLOT.release()


def _run_locked(job: RetrainJob, uri: str, cancel: threading.Event | None) -> JobOutcome:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(uri)
    name = job.registered_name
    out = JobOutcome(job.name, "failed", name, metric=job.metric)
    moved = False
    started = time.time()
    log.info("job %s: start (model %s, data %s, tracking %s)", job.name, name, job.data, uri)
    try:
        exp_id = _experiment_id(client)
        run = client.create_run(
            exp_id,
            run_name=f"{job.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}",
            tags={f"{TAG}job": job.name, f"{TAG}model": name, f"{TAG}metric": job.metric},
        )
        out.run_id = run.info.run_id
    except Exception as e:
        out.error = f"cannot create the MLflow run at {uri}: {type(e).__name__}: {e}"
        log.error("job %s: %s", job.name, out.error)
        return out

    run_id = out.run_id
    try:
        _check(cancel, "before training")
        frame, files = load_fresh(job.data)
        recipe = build_recipe(job)
        origins = holdout_origins(len(frame), recipe.data.lookback, recipe.data.horizon, job.holdout_windows)
        champion_before = _aliases(client, name).get(CHAMPION)
        out.champion_before = champion_before
        params = {
            "job": job.name,
            "recipe": job.recipe,
            "model": name,
            "data": job.data,
            "files": len(files),
            "rows": len(frame),
            "first_date": frame["date"][0],
            "last_date": frame["date"][-1],
            "holdout_windows": job.holdout_windows,
            "holdout_first_origin": frame["date"][origins.start],
            "metric": job.metric,
            "min_improvement": job.min_improvement,
            "overrides": ",".join(job.overrides) or "-",
            "smoke": job.smoke,
            "cron": job.cron,
        }
        client.log_batch(run_id, params=[Param(k, str(v)[:500]) for k, v in params.items()])
        client.set_tag(run_id, f"{TAG}champion_version", champion_before or "none")

        from training.run import train

        with tempfile.TemporaryDirectory(prefix="seer-retrain-") as tmp_dir:
            tmp = Path(tmp_dir)
            fresh = tmp / f"{job.name}.parquet"
            frame.write_parquet(fresh)
            log.info("job %s: training a challenger on %d rows from %d file(s)", job.name, len(frame), len(files))
            callbacks = [_cancel_callback(cancel)] if cancel is not None else []
            result = train(build_recipe(job, dataset=str(fresh)), uri=uri, claim_champion=False, callbacks=callbacks)
            out.challenger_version = result.version
            client.set_tag(run_id, f"{TAG}challenger_version", result.version)
            client.set_tag(run_id, f"{TAG}challenger_run_id", result.run_id)
            client.set_tag(result.run_id, f"{TAG}job", job.name)
            client.set_tag(result.run_id, f"{TAG}data", job.data)
            _check(cancel, "after training")

            challenger = _load_version(name, result.version, uri, tmp)
            scores = {f"challenger_{k}": v for k, v in holdout_scores(challenger, frame, origins).items()}
            if champion_before is not None:
                champion = _load_version(name, champion_before, uri, tmp)
                if champion.horizon != challenger.horizon:
                    raise ValueError(
                        f"champion v{champion_before} forecasts {champion.horizon} steps, the challenger "
                        f"{challenger.horizon}: not comparable on one holdout (register it under another model name)"
                    )
                if sorted(champion.variates) != sorted(challenger.variates):
                    raise ValueError(
                        f"champion v{champion_before} forecasts {champion.variates}, the challenger "
                        f"{challenger.variates}: not comparable"
                    )
                scores.update({f"champion_{k}": v for k, v in holdout_scores(champion, frame, origins).items()})
        out.scores = scores
        decision, improvement = decide(
            scores.get(f"champion_{job.metric}"), scores[f"challenger_{job.metric}"], job.min_improvement
        )
        alias = CHAMPION if decision in ("first", "promoted") else CHALLENGER
        champion_after = result.version if alias == CHAMPION else champion_before
        now = int(time.time() * 1000)
        metrics = dict(scores)
        if improvement is not None:
            metrics["improvement"] = improvement
        record = {
            "job": job.name,
            "model": name,
            "decision": decision,
            "alias_moved": alias,
            "challenger_version": result.version,
            "champion_before": champion_before,
            "champion_after": champion_after,
            "metric": job.metric,
            "min_improvement": job.min_improvement,
            "improvement": improvement,
            "scores": scores,
            "holdout": {"windows": job.holdout_windows, "first_origin": str(frame["date"][origins.start])},
            "files": [str(f) for f in files],
        }
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(f"{TAG}decision", decision), RunTag(f"{TAG}champion_after", str(champion_after))],
        )

        _check(cancel, "before moving the alias")
        if alias == CHAMPION:
            current = _aliases(client, name).get(CHAMPION)
            if current != champion_before:
                raise RuntimeError(
                    f"@champion of {name} moved from {champion_before} to {current} while the job ran; not overwriting"
                )
        client.set_registered_model_alias(name, alias, result.version)
        moved = True
        out.status, out.champion_after = decision, champion_after
        log.info("%s", out.summary())
    except BaseException as e:
        out.status = "failed"
        out.error = f"{type(e).__name__}: {e}"
        log.error("job %s failed, no alias moved: %s", job.name, out.error)
        try:
            client.set_tag(run_id, f"{TAG}decision", "failed")
            client.set_tag(run_id, f"{TAG}error", out.error[:4000])
            client.log_text(run_id, "".join(traceback.format_exception(e)), "error.txt")
            client.set_terminated(run_id, "FAILED")
        except Exception as log_error:  # the tracking server itself is the problem
            log.error("job %s: could not record the failure in run %s: %s", job.name, run_id, log_error)
        if not isinstance(e, Exception):
            raise
        return out

    try:  # after the alias moved, nothing may turn the job into a failure
        client.log_dict(run_id, record, "decision.json")
        client.log_metric(run_id, "duration_s", time.time() - started)
        client.set_terminated(run_id, "FINISHED")
    except Exception as e:
        log.warning("job %s: alias moved=%s but finishing run %s failed: %s", job.name, moved, run_id, e)
    return out


# ------------------------------------------------------------------------------------ schedulers


def run_once(jobs_file: JobsFile, *, uri: str | None = None, cancel: threading.Event | None = None) -> list[JobOutcome]:
    """Every job once, in file order; after a shutdown request the remaining jobs are `cancelled`."""
    outcomes = []
    for job in jobs_file.jobs:
        if cancel is not None and cancel.is_set():
            outcomes.append(JobOutcome(job.name, "cancelled", job.registered_name, error="shutdown before it started"))
            continue
        outcomes.append(run_job(job, uri=uri, cancel=cancel))
    return outcomes


def build_scheduler(jobs_file: JobsFile, *, uri: str | None = None, cancel: threading.Event) -> BackgroundScheduler:
    """A (not yet started) APScheduler with one cron job per retraining job."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    sched = BackgroundScheduler(
        # One thread per job, so a job waiting for another to finish training is not "missed";
        # `_RUN_SLOT` makes them take turns.
        executors={"default": ThreadPoolExecutor(max_workers=len(jobs_file.jobs))},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": jobs_file.misfire_grace_time},
        timezone=jobs_file.timezone,
    )
    for job in jobs_file.jobs:
        sched.add_job(
            run_job,
            trigger=parse_cron(job.cron, jobs_file.timezone),
            kwargs={"job": job, "uri": uri, "cancel": cancel},
            id=job.name,
            name=f"retrain {job.name}",
        )

    def on_event(event: Any) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("job %s is still running; this run is skipped", event.job_id)
        elif event.code == EVENT_JOB_MISSED:
            late, when = jobs_file.misfire_grace_time, event.scheduled_run_time
            log.warning("job %s missed its run at %s (more than %d s late)", event.job_id, when, late)
        elif event.code == EVENT_JOB_ERROR:
            log.error("job %s raised: %s", event.job_id, event.exception)

    sched.add_listener(on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    return sched


def run_scheduler(
    jobs_file: JobsFile,
    *,
    uri: str | None = None,
    stop: threading.Event,
    cancel: threading.Event,
    heartbeat: Path | None = None,
) -> int:
    """Run the cron schedule until `stop` is set; then cancel a running job and wait for it."""
    sched = build_scheduler(jobs_file, uri=uri, cancel=cancel)
    sched.start()
    if heartbeat is not None:
        heartbeat.touch()
    for job in jobs_file.jobs:
        next_run = sched.get_job(job.name).next_run_time
        log.info("scheduled %s (%s %s): next run %s", job.name, job.cron, jobs_file.timezone, next_run)
    try:
        while not stop.wait(5.0 if heartbeat else 60.0):
            if heartbeat is not None:
                heartbeat.touch()
    finally:
        running = sorted(_RUNNING)
        if running:
            log.warning(
                "stopping: cancelling running job(s) %s at their next checkpoint; their runs end FAILED, "
                "no alias moves",
                ", ".join(running),
            )
        else:
            log.info("stopping: no job is running")
        cancel.set()
        sched.shutdown(wait=True)
        log.info("scheduler stopped")
    return 0


def _install_signal_handlers(stop: threading.Event, cancel: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        sig = signal.Signals(signum).name
        if stop.is_set():
            log.error("%s again: exiting now (a running job's MLflow run stays RUNNING)", sig)
            os._exit(128 + signum)
        log.warning("%s: stopping; a running job is cancelled at its next checkpoint (again to force)", sig)
        stop.set()
        cancel.set()

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def main(jobs_path: str | Path, *, once: bool = False) -> int:
    """`seer retrain`: 0 when all went well; `--once` returns 1 if any job failed or was cancelled."""
    jobs_file = load_jobs(jobs_path)
    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep the job log readable
    stop, cancel = threading.Event(), threading.Event()
    previous = _install_signal_handlers(stop, cancel)
    names = ", ".join(j.name for j in jobs_file.jobs)
    print(f"retraining {len(jobs_file.jobs)} job(s) from {jobs_path}: {names}; tracking {uri}", flush=True)
    try:
        if not once:
            hb = os.environ.get("SEER_RETRAIN_HEARTBEAT")
            return run_scheduler(jobs_file, uri=uri, stop=stop, cancel=cancel, heartbeat=Path(hb) if hb else None)
        outcomes: list[JobOutcome] = []
        worker = threading.Thread(
            target=lambda: outcomes.extend(run_once(jobs_file, uri=uri, cancel=cancel)), name="seer-retrain-once"
        )
        worker.start()
        while worker.is_alive():  # joined in slices so signals are handled promptly
            worker.join(0.5)
        for outcome in outcomes:
            print(outcome.summary(), flush=True)
        print(f"decisions and scores: experiment {EXPERIMENT} in {uri}", flush=True)
        return 0 if outcomes and all(o.ok for o in outcomes) else 1
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
