"""Scheduled retraining (training/retrain/): the jobs file's validation, cron, the scheduler's guards and the
decision rule — everything that runs without training a model."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from tests.training.retrain_fixtures import job_dict, write_jobs
from training import retrain
from training.retrain import JobsFileError, decide, load_jobs, parse_cron

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


def test_decision_rule():
    assert decide(None, 1.0, 0.02) == ("first", None)
    assert decide(1.0, 0.97, 0.02)[0] == "promoted"
    assert decide(1.0, 0.99, 0.02)[0] == "kept"  # better, but not by the margin
    assert decide(1.0, 1.0, 0.0)[0] == "kept"  # a tie keeps the champion
    assert decide(1.0, 0.5, 0.0) == ("promoted", 0.5)
    with pytest.raises(ValueError, match="challenger's holdout score is nan"):
        decide(1.0, float("nan"), 0.0)


def test_the_metric_choices_come_from_the_task_holdout(tmp_path, monkeypatch):
    import dataclasses

    from training import tasks
    from training.tasks.forecast.holdout import FORECAST_HOLDOUT

    task = FORECAST_HOLDOUT.task
    monkeypatch.setitem(tasks.HOLDOUTS, task, dataclasses.replace(FORECAST_HOLDOUT, metrics=("crps", "mse", "mae")))
    assert load_jobs(write_jobs(tmp_path / "a.yaml", job_dict("j", "/d.csv"))).jobs[0].metric == "crps"  # the first
    with pytest.raises(JobsFileError, match=r"jobs\[0\] \(j\)\.metric: Input should be 'crps', 'mse' or 'mae'"):
        load_jobs(write_jobs(tmp_path / "b.yaml", job_dict("j", "/d.csv", metric="rmse")))
    monkeypatch.delitem(tasks.HOLDOUTS, task)
    with pytest.raises(JobsFileError, match=rf"jobs\[0\] \(j\): no retraining holdout for task '{task}'"):
        load_jobs(write_jobs(tmp_path / "c.yaml", job_dict("j", "/d.csv")))
