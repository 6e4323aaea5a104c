"""Scheduled retraining (training/retrain.py): jobs file validation, fresh data, the champion/challenger
decision recorded in MLflow, failures that move no alias, no overlap, cron, clean shutdown.

The models are tiny (`smoke: true`, lookback 24, horizon 8) and train for 2 steps on 600 hourly rows of
sine waves. Which model wins is made deterministic by the data, not by training luck: with
`model.use_norm=false` a model's forecasts sit at the level of the rows its scaler was fitted on, so a
level shift in the data decides by a wide margin (errors of ~50² against ~1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from mlflow import MlflowClient

from training import retrain
from training.retrain import (
    EXPERIMENT,
    JobsFileError,
    RetrainCancelled,
    decide,
    holdout_origins,
    load_fresh,
    load_jobs,
    parse_cron,
    run_job,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.lookback=24", "data.horizon=8", "data.batch_size=16", "model.use_norm=false"]


def sine_frame(n: int = 600, level: float = 0.0, level_until: int | None = None, start: datetime | None = None):
    """Hourly `date, a, b`; `level` is added to the rows before `level_until` (all rows by default)."""
    t = np.arange(n)
    start = start or datetime(2024, 1, 1)
    shift = np.where(t < (n if level_until is None else level_until), level, 0.0)
    return pl.DataFrame(
        {
            "date": [start + timedelta(hours=int(i)) for i in t],
            "a": np.sin(2 * np.pi * t / 24) + shift,
            "b": 2 * np.cos(2 * np.pi * t / 12) + shift,
        }
    )


def job_dict(name: str, data: str, **extra) -> dict:
    job = {
        "name": name,
        "recipe": "itransformer-etth1",
        "data": data,
        "cron": "0 3 * * *",
        "holdout_windows": 32,
        "min_improvement": 0.02,
        "smoke": True,
        "model": "sine",
        "overrides": TINY,
    }
    job.update(extra)
    return job


def write_jobs(path: Path, *jobs: dict, **top) -> Path:
    path.write_text(yaml.safe_dump({**top, "jobs": list(jobs)}))
    return path


def one_job(tmp_path: Path, **fields):
    jobs = write_jobs(tmp_path / f"jobs-{fields.get('name', 'j')}.yaml", job_dict(**fields))
    return load_jobs(jobs).jobs[0]


# ------------------------------------------------------------------------------------ validation


def test_a_valid_file_resolves_relative_data_and_the_model_name(tmp_path):
    jobs = load_jobs(write_jobs(tmp_path / "jobs.yaml", job_dict("nightly", "data/*.csv", model=None)))
    job = jobs.jobs[0]
    assert job.data == str(tmp_path / "data" / "*.csv")
    assert job.registered_name == "itransformer-etth1"
    assert (jobs.timezone, jobs.misfire_grace_time, job.metric) == ("UTC", 3600, "mse")
    (tmp_path / "list.yaml").write_text(yaml.safe_dump([job_dict("x", "/d.csv")]))  # a bare list works too
    assert load_jobs(tmp_path / "list.yaml").jobs[0].registered_name == "sine"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"holdout": 5}, r"jobs\[0\] \(j\)\.holdout: Extra inputs are not permitted"),
        ({"metric": "rmse"}, r"jobs\[0\] \(j\)\.metric: Input should be 'mse' or 'mae'"),
        ({"cron": "61 * * * *"}, r"jobs\[0\] \(j\)\.cron: cron '61 \* \* \* \*'.*59"),
        ({"cron": "0 3 * *"}, r"expected 5 fields"),
        ({"cron": "0 3 1 * 1"}, r"not both"),
        ({"recipe": "nope"}, r"unknown recipe 'nope'; available"),
        ({"recipe": "moirai-moe-tiny"}, r"pretrains on the corpus mixture; retraining on fresh files takes a dataset"),
        ({"overrides": ["trainer.bogus=1"]}, r"trainer has no field 'bogus'"),
        ({"overrides": ["data.dataset=x.csv"]}, r"data.dataset cannot be overridden"),
        ({"min_improvement": 1.5}, r"min_improvement: Input should be less than 1"),
        ({"holdout_windows": 0}, r"holdout_windows: Input should be greater than or equal to 1"),
        ({"name": "bad name"}, r"jobs\[0\] \(bad name\)\.name: String should match pattern"),
    ],
)
def test_invalid_jobs_say_which_field_of_which_job(tmp_path, change, message):
    with pytest.raises(JobsFileError, match=message):
        load_jobs(write_jobs(tmp_path / "jobs.yaml", {**job_dict("j", "/d.csv"), **change}))


def test_invalid_files(tmp_path):
    with pytest.raises(JobsFileError, match="unique; repeated: j"):
        load_jobs(write_jobs(tmp_path / "a.yaml", job_dict("j", "/d.csv"), job_dict("j", "/e.csv")))
    with pytest.raises(JobsFileError, match="jobs: List should have at least 1 item"):
        load_jobs(write_jobs(tmp_path / "b.yaml"))
    with pytest.raises(JobsFileError, match="unknown time zone 'Mars/Base'"):
        load_jobs(write_jobs(tmp_path / "c.yaml", job_dict("j", "/d.csv"), timezone="Mars/Base"))
    (tmp_path / "d.yaml").write_text("jobs: [name: x\n")
    with pytest.raises(JobsFileError, match="not valid YAML"):
        load_jobs(tmp_path / "d.yaml")
    with pytest.raises(FileNotFoundError, match="jobs file not found"):
        load_jobs(tmp_path / "missing.yaml")


def test_cli_reports_an_invalid_file_and_exits_2(tmp_path, capsys):
    from seer.cli import main

    bad = write_jobs(tmp_path / "jobs.yaml", job_dict("j", "/d.csv", metric="rmse"))
    assert main(["retrain", "--jobs", str(bad), "--once"]) == 2
    assert "metric: Input should be 'mse' or 'mae'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ cron


def _next(expr: str, after: datetime) -> datetime:
    return parse_cron(expr, "UTC").get_next_fire_time(None, after)


def test_cron_uses_crontab_weekday_numbers():
    wednesday = datetime(2025, 1, 1, 12, tzinfo=timezone.utc)  # 2025-01-01 is a Wednesday
    assert _next("0 3 * * 0", wednesday).strftime("%a %H:%M") == "Sun 03:00"  # crontab: 0 = Sunday
    assert _next("0 3 * * 7", wednesday).strftime("%a") == "Sun"
    assert _next("0 3 * * 1-5", datetime(2025, 1, 3, 12, tzinfo=timezone.utc)).strftime("%a") == "Mon"
    assert _next("30 1 * * sat", wednesday).strftime("%a %H:%M") == "Sat 01:30"
    assert _next("@daily", wednesday) == datetime(2025, 1, 2, tzinfo=timezone.utc)
    assert _next("*/15 * * * *", wednesday + timedelta(minutes=1)) == wednesday + timedelta(minutes=15)
    assert retrain.crontab_day_of_week("5-7") == "sun,fri,sat"
    assert retrain.crontab_day_of_week("*/2") == "sun,tue,thu,sat"
    with pytest.raises(ValueError, match="backwards"):
        retrain.crontab_day_of_week("fri-mon")


def test_the_scheduler_guards_every_job(tmp_path):
    jobs = load_jobs(
        write_jobs(tmp_path / "j.yaml", job_dict("a", "/d.csv"), job_dict("b", "/e.csv", model="other"), timezone="UTC")
    )
    sched = retrain.build_scheduler(jobs, uri="sqlite:///x.db", cancel=threading.Event())
    sched.start(paused=True)
    try:
        got = {j.id: j for j in sched.get_jobs()}
        assert set(got) == {"a", "b"}
        for j in got.values():
            assert (j.max_instances, j.coalesce, j.misfire_grace_time) == (1, True, 3600)
            assert str(j.trigger) == "cron[month='*', day='*', day_of_week='*', hour='3', minute='0']"
    finally:
        sched.shutdown(wait=False)


# ------------------------------------------------------------------------------------ fresh data


def test_fresh_data_concatenates_dedups_later_file_wins_and_sorts(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    sine_frame(100).write_csv(d / "2024-01.csv")
    later = sine_frame(100, start=datetime(2024, 1, 1) + timedelta(hours=50)).with_columns(pl.col("a") + 100)
    later.write_parquet(d / "2024-02.parquet")
    long = sine_frame(20, start=datetime(2024, 1, 1) + timedelta(hours=150)).unpivot(
        index="date", variable_name="unique_id", value_name="y"
    )
    long.rename({"date": "ds"}).write_csv(d / "2024-03.csv")  # the long format mixes in
    frame, files = load_fresh(str(d / "2024-*"))
    assert [f.name for f in files] == ["2024-01.csv", "2024-02.parquet", "2024-03.csv"]
    assert frame.height == 170 and frame["date"].is_sorted() and frame["date"].n_unique() == 170
    assert frame["a"][49] == pytest.approx(np.sin(2 * np.pi * 49 / 24))  # only in the first file
    assert frame["a"][50] == pytest.approx(100.0)  # 2024-02 overrides 2024-01's row 50 (sin 0 = 0)
    with pytest.raises(FileNotFoundError, match="no data files match"):
        load_fresh(str(tmp_path / "nothing-*.csv"))
    sine_frame(10).rename({"b": "c"}).write_csv(d / "2024-04.csv")
    with pytest.raises(ValueError, match="same variates"):
        load_fresh(str(d / "*.csv"))


def test_holdout_origins_stay_inside_the_test_rows():
    origins = holdout_origins(600, lookback=24, horizon=8, windows=32)
    assert (origins.start, origins.stop - 1 + 8) == (600 - 8 - 31, 600)  # the last window ends on the last row
    assert len(holdout_origins(600, 24, 8, 113)) == 113  # targets from row 480 = the first test target
    with pytest.raises(ValueError, match="at most 113 windows"):
        holdout_origins(600, 24, 8, 114)


def test_decision_rule():
    assert decide(None, 1.0, 0.02) == ("first", None)
    assert decide(1.0, 0.97, 0.02)[0] == "promoted"
    assert decide(1.0, 0.99, 0.02)[0] == "kept"  # better, but not by the margin
    assert decide(1.0, 1.0, 0.0)[0] == "kept"  # a tie keeps the champion
    assert decide(1.0, 0.5, 0.0) == ("promoted", 0.5)
    with pytest.raises(ValueError, match="challenger's holdout score is nan"):
        decide(1.0, float("nan"), 0.0)


# ------------------------------------------------------------------------------ the whole story


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    """first (trained on level-50 data) → promoted (fresh level-0 data) → kept (a regime change makes the
    challenger's training rows stale) — three real runs of tiny models in one SQLite store."""
    tmp = tmp_path_factory.mktemp("retrain")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    for name, frame in {
        "old": sine_frame(level=50.0),
        "fresh": sine_frame(),
        "regime": sine_frame(level=50.0, level_until=500),  # level 50 except the last 100 rows
    }.items():
        (tmp / name).mkdir()
        frame.write_csv(tmp / name / "part-0.csv")
    jobs = load_jobs(
        write_jobs(
            tmp / "jobs.yaml",
            job_dict("first", "old/*.csv"),
            job_dict("better", "fresh/*.csv"),
            job_dict("worse", "regime/*.csv"),
        )
    ).jobs
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("SEER_RETRAIN_LOCK_DIR", str(tmp / "locks"))
        outcomes = {job.name: run_job(job, uri=uri) for job in jobs}
        yield outcomes, MlflowClient(uri), uri, tmp, jobs


def _run(client, outcome):
    return client.get_run(outcome.run_id)


def test_first_run_becomes_champion(story):
    outcomes, client, *_ = story
    first = outcomes["first"]
    assert (first.status, first.challenger_version, first.champion_before) == ("first", "1", None), first.error
    run = _run(client, first)
    assert run.info.status == "FINISHED"
    assert run.data.tags["seer.retrain.decision"] == "first"
    assert run.data.tags["seer.retrain.job"] == "first"
    assert run.data.tags["seer.retrain.champion_version"] == "none"
    assert "challenger_mse" in run.data.metrics and "champion_mse" not in run.data.metrics
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT


def test_a_better_challenger_is_promoted(story):
    outcomes, client, *_ = story
    better = outcomes["better"]
    assert better.status == "promoted", better.error
    assert (better.challenger_version, better.champion_before, better.champion_after) == ("2", "1", "2")
    run = _run(client, better)
    m, tags = run.data.metrics, run.data.tags
    assert m["champion_mse"] > 100 * m["challenger_mse"]  # the stale champion forecasts level 50
    assert m["improvement"] > 0.9 and {"champion_mae", "challenger_mae"} <= set(m)
    assert tags["seer.retrain.decision"] == "promoted"
    assert (tags["seer.retrain.champion_version"], tags["seer.retrain.challenger_version"]) == ("1", "2")
    assert tags["seer.retrain.champion_after"] == "2"
    assert client.get_run(tags["seer.retrain.challenger_run_id"]).data.tags["seer.retrain.job"] == "better"
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "decision.json" in arts and "error.txt" not in arts
    assert run.data.params["holdout_windows"] == "32" and run.data.params["rows"] == "600"


def test_a_worse_challenger_only_gets_the_challenger_alias(story):
    outcomes, client, *_ = story
    worse = outcomes["worse"]
    assert worse.status == "kept", worse.error
    assert (worse.challenger_version, worse.champion_after) == ("3", "2")
    run = _run(client, worse)
    assert run.data.metrics["challenger_mse"] > run.data.metrics["champion_mse"]
    assert run.data.tags["seer.retrain.decision"] == "kept"
    aliases = client.get_registered_model("sine").aliases
    assert (str(aliases["champion"]), str(aliases["challenger"])) == ("2", "3")


def _assert_untouched(client):
    aliases = client.get_registered_model("sine").aliases
    assert (str(aliases["champion"]), str(aliases["challenger"])) == ("2", "3")


def _assert_failed_run(client, outcome, message):
    assert outcome.status == "failed" and message in outcome.error
    run = _run(client, outcome)
    assert run.info.status == "FAILED"
    assert run.data.tags["seer.retrain.decision"] == "failed"
    assert message in run.data.tags["seer.retrain.error"]
    text = client.download_artifacts(run.info.run_id, "error.txt")
    assert message in Path(text).read_text()


def test_a_missing_data_source_fails_and_moves_no_alias(story, tmp_path):
    _, client, uri, *_ = story
    outcome = run_job(one_job(tmp_path, name="gone", data="nowhere/*.csv"), uri=uri)
    _assert_failed_run(client, outcome, "no data files match")
    _assert_untouched(client)


def test_a_corrupt_file_fails_and_moves_no_alias(story, tmp_path):
    _, client, uri, *_ = story
    (tmp_path / "bad.csv").write_text("date,a,b\n2024-01-01 00:00,1.0,oops\n2024-01-01 01:00,2.0,3.0\n")
    outcome = run_job(one_job(tmp_path, name="corrupt", data="bad.csv"), uri=uri)
    _assert_failed_run(client, outcome, "non-numeric variate columns")
    _assert_untouched(client)


def test_a_holdout_too_long_fails_before_training(story, tmp_path):
    _, client, uri, tmp, _ = story
    outcome = run_job(one_job(tmp_path, name="long", data=str(tmp / "fresh/*.csv"), holdout_windows=500), uri=uri)
    _assert_failed_run(client, outcome, "at most 113 windows")
    assert "seer.retrain.challenger_version" not in _run(client, outcome).data.tags
    _assert_untouched(client)


def test_a_champion_with_another_horizon_fails_after_registering_without_alias(story, tmp_path):
    _, client, uri, tmp, _ = story
    overrides = [o for o in TINY if not o.startswith("data.horizon")] + ["data.horizon=4"]
    job = one_job(tmp_path, name="h4", data=str(tmp / "fresh/*.csv"), overrides=overrides)
    outcome = run_job(job, uri=uri)
    _assert_failed_run(client, outcome, "forecasts 8 steps, the challenger 4")
    assert outcome.challenger_version  # registered, but it carries no alias
    assert client.get_model_version("sine", outcome.challenger_version).aliases == []
    _assert_untouched(client)


def test_a_cancelled_job_fails_cleanly(story, tmp_path):
    _, client, uri, tmp, _ = story
    cancel = threading.Event()
    cancel.set()
    outcome = run_job(one_job(tmp_path, name="stop", data=str(tmp / "fresh/*.csv")), uri=uri, cancel=cancel)
    _assert_failed_run(client, outcome, "cancelled before training")
    _assert_untouched(client)


def test_the_cancel_callback_stops_training_at_the_next_batch():
    cancel = threading.Event()
    callback = retrain._cancel_callback(cancel)
    callback.on_train_batch_start(None, None, None, 0)  # nothing requested: carries on
    cancel.set()
    for hook in (callback.on_train_batch_start, callback.on_validation_batch_start, callback.on_test_batch_start):
        with pytest.raises(RetrainCancelled, match="during training"):
            hook(None, None, None, 0)


def test_a_job_never_overlaps_itself(story, tmp_path, monkeypatch):
    _, client, uri, tmp, _ = story
    import training.run

    started, release = threading.Event(), threading.Event()

    def slow_train(*args, **kwargs):
        started.set()
        assert release.wait(60)
        raise RuntimeError("training stopped by the test")

    monkeypatch.setattr(training.run, "train", slow_train)
    job = one_job(tmp_path, name="slow", data=str(tmp / "fresh/*.csv"))
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", run_job(job, uri=uri)))
    first.start()
    try:
        assert started.wait(60)
        t0 = time.monotonic()
        second = run_job(job, uri=uri)
        assert second.status == "skipped" and second.run_id is None and time.monotonic() - t0 < 5
    finally:
        release.set()
        first.join(60)
    assert results["first"].status == "failed" and "stopped by the test" in results["first"].error
    with retrain.job_lock(job, uri) as held:  # released afterwards: the next run goes ahead
        assert held
    _assert_untouched(client)


def test_once_exits_1_when_a_job_failed(story, tmp_path, capsys, monkeypatch):
    _, _, uri, *_ = story
    from seer.cli import main

    jobs = write_jobs(tmp_path / "jobs.yaml", job_dict("gone", "nowhere/*.csv"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["retrain", "--jobs", str(jobs), "--once"]) == 1
    out = capsys.readouterr().out
    assert "job gone: FAILED, no alias moved: FileNotFoundError: no data files match" in out
    assert f"experiment {EXPERIMENT} in {uri}" in out


def test_sigterm_stops_the_scheduler_cleanly(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.yaml", job_dict("later", "/d.csv", cron="0 3 1 1 *"))
    beat = tmp_path / "alive"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "SEER_RETRAIN_HEARTBEAT": str(beat),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "seer", "retrain", "--jobs", str(jobs)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        for line in proc.stdout:  # wait until the schedule is up
            lines.append(line)
            if "scheduled later (0 3 1 1 * UTC): next run" in line:
                break
        assert beat.exists(), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(lines) + rest
    assert proc.returncode == 0, log
    assert "SIGTERM: stopping" in log and "no job is running" in log and "scheduler stopped" in log
