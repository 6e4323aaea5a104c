"""The compose stack's story, natively: PostgreSQL + `mlflow server` (conftest), then the same `seer`
commands the compose services run (commands.py), against the server over HTTP.

train v1 (`seer train --smoke`, a deliberately bad learning rate) → @champion, served by `seer serve`;
`seer retrain --once` on fresh ETTh1 files → a properly trained v2 wins → @champion moves; an identical
v3 cannot beat v2 by the job's 50 % margin → @challenger, @champion stays; the scheduler form of the
command (`seer retrain --jobs FILE`, as compose runs it) starts and stops cleanly on SIGTERM.
Service hot reload (the running service switching to v2) is not covered here yet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest
import yaml
from mlflow import MlflowClient

from .commands import BAD_FIRST_TRAIN_ARGS, executable, seer_retrain, seer_serve, seer_train
from .conftest import free_port, stop_process, wait_http

pytestmark = pytest.mark.slow
MODEL = "itransformer-etth1"


@pytest.fixture(scope="module")
def stack(mlflow_uri, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "SEER_RETRAIN_LOCK_DIR": str(tmp / "locks"),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    return tmp, env, MlflowClient(mlflow_uri)


def seer(argv: list[str], env: dict, cwd, timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(executable(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return out


@pytest.fixture(scope="module")
def trained(stack):
    tmp, env, client = stack
    out = seer(seer_train(MODEL, *BAD_FIRST_TRAIN_ARGS), env, tmp)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def test_train_registers_the_champion_on_the_server(stack, trained):
    _, _, client = stack
    assert f"registered models:/{MODEL}/1 (now @champion)" in trained.stdout
    mv = client.get_model_version_by_alias(MODEL, "champion")
    assert str(mv.version) == "1"
    # The artifacts live behind the server's proxy, not on a path the client must reach.
    assert client.get_run(mv.run_id).info.artifact_uri.startswith("mlflow-artifacts:")


def test_serve_loads_the_champion_through_the_server(stack, trained):
    tmp, env, _ = stack
    port = free_port()
    log = tmp / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            executable(seer_serve(f"{MODEL}@champion", "127.0.0.1", port)),
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", proc, log, timeout=240)
        info = httpx.get(f"{base}/v1/models/{MODEL}", timeout=30).json()
        assert (str(info["version"]), info["alias"]) == ("1", "champion")
        ex = info["example_input"]
        r = httpx.post(
            f"{base}/v1/models/{MODEL}/forecast",
            json={"history": ex["history"], "timestamps": ex["timestamps"]},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["forecast"]) == info["horizon"]
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def jobs_file(stack):
    """Fresh data as two overlapping ETTh1 files (a later file wins on shared dates) and two jobs."""
    tmp, _, _ = stack
    from data.sources import load_series

    frame, _ = load_series("ETTh1")
    data = tmp / "data"
    data.mkdir()
    frame.head(12000).write_csv(data / "etth1-part1.csv")
    frame.slice(11000).write_csv(data / "etth1-part2.csv")
    common = {"recipe": "itransformer-etth1", "data": "data/*.csv", "cron": "0 3 * * *", "smoke": True}
    jobs = {
        "jobs": [
            {"name": "promote", "holdout_windows": 64, "min_improvement": 0.02, **common},
            # The same config on the same data: v3 equals v2 and cannot be 50 % better.
            {"name": "keep", "holdout_windows": 64, "min_improvement": 0.5, **common},
        ]
    }
    path = tmp / "jobs.yaml"
    path.write_text(yaml.safe_dump(jobs, sort_keys=False))
    return path


def test_retrain_once_promotes_a_better_challenger_and_keeps_a_worse_one(stack, trained, jobs_file):
    tmp, env, client = stack
    out = seer(seer_retrain(str(jobs_file), once=True), env, tmp)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-4000:]
    assert f"job promote: promoted, models:/{MODEL}/2 now @champion" in out.stdout
    assert f"job keep: kept, models:/{MODEL}/3 @challenger; @champion stays v2" in out.stdout
    aliases = {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}
    assert aliases == {"champion": "2", "challenger": "3"}

    exp = client.get_experiment_by_name("seer-retrain")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    decisions = [(r.data.tags["seer.retrain.job"], r.data.tags["seer.retrain.decision"]) for r in runs]
    assert decisions == [("promote", "promoted"), ("keep", "kept")]
    promote = runs[0]
    assert promote.info.status == "FINISHED"
    assert promote.data.metrics["champion_mse"] > 100 * promote.data.metrics["challenger_mse"]
    assert promote.data.params["files"] == "2" and promote.data.params["rows"] == "17420"  # deduplicated


def test_the_scheduler_command_runs_and_stops_on_sigterm(stack, jobs_file):
    tmp, env, _ = stack
    proc = subprocess.Popen(
        executable(seer_retrain(str(jobs_file))),
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("INFO seer.retrain: scheduled keep") or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(lines) + rest
    assert proc.returncode == 0, log
    assert "scheduled promote (0 3 * * * UTC): next run" in log and "scheduler stopped" in log
