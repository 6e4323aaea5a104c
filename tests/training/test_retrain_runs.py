"""Scheduled retraining (training/retrain/), real runs: the champion/challenger decision recorded in MLflow,
failures that move no alias, no overlap, clean shutdown.

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
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.training.retrain_fixtures import TINY, job_dict, one_job, sine_frame, write_jobs
from training import retrain
from training.retrain import EXPERIMENT, RetrainCancelled, load_jobs, run_job


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
    callback = retrain.cancel_callback(cancel)
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
