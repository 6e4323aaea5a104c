"""Scheduled retraining with champion/challenger promotion (README, Retraining).

`seer retrain --jobs jobs.yaml` runs every job on its cron schedule until SIGINT/SIGTERM;
`seer retrain --jobs jobs.yaml --once` runs every job once, now, and exits 1 if any failed.

The jobs file (validated by `jobs.RetrainJob`/`jobs.JobsFile`; every error names the field and the job)::

    timezone: UTC                # cron expressions are read in this zone (default UTC)
    misfire_grace_time: 3600     # s; a run the scheduler could not start on time still runs
                                 # if it is at most this late (APScheduler's default is 1 s)
    jobs:
      - name: nightly            # unique; [A-Za-z0-9_.-]
        recipe: RECIPE           # a dataset recipe (`seer recipes`); deploy/jobs.yaml is a real file
        data: /data/*.csv        # a path or a glob of the files the recipe's task reads (see its holdout);
                                 # relative paths start at this file's folder
        cron: "0 3 * * *"        # crontab: minute hour day month day-of-week (0/7 = Sunday), or @daily..
        holdout_windows: 64      # the W most recent holdout windows of the fresh data
        metric: METRIC           # a score the task's holdout offers (its `metrics`); default: the first
        min_improvement: 0.02    # relative: the challenger must be at least 2 % better
        overrides: [trainer.max_epochs=3]   # optional, `seer train --set` style
        model: NAME              # optional registered name (default: the recipe's)
        smoke: false             # optional: the recipe's tiny config (demos and checks)

A bare list of jobs is accepted too. What one run of a job does (`runner`); the task-specific parts
come from the recipe's task, `training.tasks.holdout_for(recipe.task)` (`training/tasks/<task>/holdout.py`
says what a file, a window and a score are for that task):

1. Fresh data: the task's holdout reads every file the pattern matches (sorted by name) into one data set
   and writes it where the challenger's recipe trains on it (`recipe.data.dataset`).
2. Holdout: the last `holdout_windows` windows of the fresh data. They must all lie in the rows the
   challenger keeps for its test split, else the job fails before training and says how many fit: the
   challenger never trained or early-stopped on them.
3. Challenger: `training.run.train` on the fresh data, registered as a new version of the model
   WITHOUT touching any alias (`claim_champion=False`).
4. Comparison: champion (the version `@champion` pointed at when the job started) and challenger are
   loaded by `inference.predictor.load_predictor` and scored by the task's holdout on the same windows,
   each with its own stored transform state (so in the units users see, not each model's scaled ones).
5. Decision (`promote`): no champion yet → `first` (the challenger becomes `@champion`);
   challenger < champion × (1 − min_improvement) → `promoted` (`@champion` moves to it);
   else `kept` (`@challenger` points at it, `@champion` stays). If `@champion` was moved by
   someone else meanwhile, the job fails instead of overwriting it. A non-finite score, models the task
   cannot compare on one holdout (its `incomparable`), a champion that cannot be loaded: the job fails.
6. Record (`record`): an MLflow run in experiment `seer-retrain` with params (job, data, files, rows, ...),
   metrics (`champion_<m>`, `challenger_<m>` for each holdout metric, `improvement`), tags
   `seer.retrain.job`, `seer.retrain.decision` (first|promoted|kept|failed), `seer.retrain.model`,
   `seer.retrain.champion_version` (before), `seer.retrain.challenger_version`,
   `seer.retrain.champion_after`, `seer.retrain.challenger_run_id`, and `decision.json`. Every
   metric and tag is written before the alias moves. A failure at any step leaves the run FAILED
   with `seer.retrain.error` and an `error.txt` artifact (the traceback), and moves no alias (a
   challenger version may already be registered; it then carries no alias).

No overlap (`locks`): a run holds an in-process lock and a file lock (`$SEER_RETRAIN_LOCK_DIR`, default
`<tmp>/seer-retrain`) keyed by tracking URI + registered model, so a job never overlaps itself
(nor another job on the same model, nor a second `seer retrain` process on this machine); the
loser returns `skipped` at once. Within one process, runs of different jobs also take turns
(training uses every core anyway). The scheduler adds `max_instances=1` and `coalesce=True`.

Stopping (`schedule`): the first SIGINT/SIGTERM stops scheduling, cancels a running job at its next
checkpoint (every training/validation/test batch, and between steps) — its run ends FAILED "cancelled",
no alias moves — and waits for it; a second signal exits at once.

Modules: `cron` (crontab → APScheduler trigger), `jobs` (the jobs file), `runner` (one run of a job),
`promote` (decision and aliases), `record` (the outcome and its MLflow run), `locks`, `schedule`
(the scheduler and `main`, the `seer retrain` command).
"""

from training.retrain.cron import crontab_day_of_week, parse_cron
from training.retrain.jobs import JobsFile, JobsFileError, RetrainJob, build_recipe, load_jobs
from training.retrain.locks import job_lock, lock_dir
from training.retrain.promote import CHALLENGER, CHAMPION, DECISIONS, Verdict, decide, judge
from training.retrain.record import EXPERIMENT, TAG, JobOutcome
from training.retrain.runner import RetrainCancelled, cancel_callback, run_job, run_once
from training.retrain.schedule import build_scheduler, main, run_scheduler

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DECISIONS",
    "EXPERIMENT",
    "TAG",
    "JobOutcome",
    "JobsFile",
    "JobsFileError",
    "RetrainCancelled",
    "RetrainJob",
    "Verdict",
    "build_recipe",
    "build_scheduler",
    "cancel_callback",
    "crontab_day_of_week",
    "decide",
    "job_lock",
    "judge",
    "load_jobs",
    "lock_dir",
    "main",
    "parse_cron",
    "run_job",
    "run_once",
    "run_scheduler",
]
