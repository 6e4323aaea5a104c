"""`seer retrain`: the cron schedule (APScheduler 3.x), `--once`, and clean shutdown on SIGINT/SIGTERM.

APScheduler 3.x (pinned `<4`) is mature and widely deployed, runs in-process (no broker or database,
unlike Celery beat or RQ), has cron triggers with time zones, and has exactly the guards this needs per
job: `max_instances` (no overlap), `coalesce` (a backlog of missed runs collapses into one) and
`misfire_grace_time` (its default of 1 s is replaced by the jobs file's). APScheduler 4 is still
pre-release with a different API; `schedule` has no cron syntax or misfire handling; a system crontab
would need a second process manager inside the container.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.retrain.cron import parse_cron
from training.retrain.jobs import JobsFile, load_jobs
from training.retrain.locks import RUNNING
from training.retrain.record import EXPERIMENT, JobOutcome
from training.retrain.runner import run_job, run_once
from training.tracking import tracking_uri

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("seer.retrain")


def build_scheduler(jobs_file: JobsFile, *, uri: str | None = None, cancel: threading.Event) -> BackgroundScheduler:
    """A (not yet started) APScheduler with one cron job per retraining job."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    sched = BackgroundScheduler(
        # One thread per job, so a job waiting for another to finish training is not "missed";
        # `locks.run_slot` makes them take turns.
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
        running = sorted(RUNNING)
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
    """First SIGINT/SIGTERM: stop scheduling and cancel a running job; a second one exits at once."""
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


def _once(jobs_file: JobsFile, uri: str, cancel: threading.Event) -> int:
    """Every job now, in a worker thread so that signals reach the main thread; 1 if any did not go well."""
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
        if once:
            return _once(jobs_file, uri, cancel)
        hb = os.environ.get("SEER_RETRAIN_HEARTBEAT")
        return run_scheduler(jobs_file, uri=uri, stop=stop, cancel=cancel, heartbeat=Path(hb) if hb else None)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
