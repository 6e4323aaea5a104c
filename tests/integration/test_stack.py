"""The compose stack's story, natively: PostgreSQL + `mlflow server` (conftest), then the same `seer`
commands the compose services run (commands.py), against the server over HTTP.

train v1 (`seer train --smoke`, a deliberately bad learning rate) → @champion, served by `seer serve`;
`seer retrain --once` on fresh ETTh1 files → a properly trained v2 wins → @champion moves; an identical
v3 cannot beat v2 by the job's 50 % margin → @challenger, @champion stays; the scheduler form of the
command (`seer retrain --jobs FILE`, as compose runs it) starts and stops cleanly on SIGTERM.

Hot reload, in the same story: one `seer serve` process (polling every second) runs throughout. It serves
v1, then switches to v2 while `seer retrain --once` runs, under a steady request loop that must see zero
failed requests; it stays on v2 when v3 only gets @challenger; a corrupt v4 forced onto @champion is
refused (v2 serves, `/readyz` shows the refusal, the failure is counted); with the MLflow server killed
it keeps answering; with the server back on the same port it picks up a good v5.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from mlflow import MlflowClient

from seer.procs import free_port, wait_http

from .commands import BAD_FIRST_TRAIN_ARGS, executable, seer_retrain, seer_serve, seer_train
from .conftest import TrackingServer, stop_process

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


@pytest.fixture(scope="module")
def served(stack, trained):
    """`seer serve` on @champion for the whole module, checking the alias every second."""
    tmp, env, _ = stack
    port = free_port()
    log = tmp / "serve.log"
    env = {**env, "SEER_RELOAD_INTERVAL_S": "1", "SEER_RELOAD_BACKOFF_MAX_S": "2"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            executable(seer_serve(f"{MODEL}@champion", "127.0.0.1", port)),
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/readyz", proc, log, timeout=240)
        yield base, log
    finally:
        stop_process(proc)


def example_body(base: str) -> dict:
    ex = httpx.get(f"{base}/v1/models/{MODEL}", timeout=30).json()["example_input"]
    return {"history": ex["history"], "timestamps": ex["timestamps"]}


def served_version(base: str) -> str:
    return str(httpx.get(f"{base}/v1/models/{MODEL}", timeout=30).json()["version"])


def wait_for(what: str, check, timeout: float = 60.0, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.25)


class RequestLoop:
    """Threads that keep POSTing forecasts, recording (status, version, seconds) per request."""

    def __init__(self, base: str, threads: int = 2) -> None:
        self.url, self.body = f"{base}/v1/models/{MODEL}/forecast", example_body(base)
        self.records: list[tuple[int, str, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    r = client.post(self.url, json=self.body)
                    status, version = r.status_code, r.json()["model"]["version"] if r.is_success else r.text
                except httpx.HTTPError as e:
                    status, version = -1, repr(e)
                self.records.append((status, version, time.perf_counter() - start))
                time.sleep(0.01)

    def __enter__(self) -> RequestLoop:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def failures(self) -> list[tuple[int, str, float]]:
        return [r for r in self.records if r[0] != 200]


def test_serve_loads_the_champion_through_the_server(served):
    base, _ = served
    info = httpx.get(f"{base}/v1/models/{MODEL}", timeout=30).json()
    assert (str(info["version"]), info["alias"]) == ("1", "champion")
    r = httpx.post(f"{base}/v1/models/{MODEL}/forecast", json=example_body(base), timeout=60)
    assert r.status_code == 200, r.text
    assert len(r.json()["forecast"]) == info["horizon"]
    ready = httpx.get(f"{base}/readyz", timeout=30).json()
    assert ready["reload"][MODEL]["tracking"] == "ok" and ready["reload"][MODEL]["version"] == "1"


@pytest.fixture(scope="module")
def jobs_file(stack):
    """Fresh data as two overlapping ETTh1 files (a later file wins on shared dates) and two jobs."""
    tmp, _, _ = stack
    from data.series.sources import load_series

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


def test_retrain_once_promotes_a_better_challenger_and_keeps_a_worse_one(stack, served, jobs_file):
    tmp, env, client = stack
    base, log = served
    with RequestLoop(base) as loop:  # the running service switches to v2 under load, failing nothing
        out = seer(seer_retrain(str(jobs_file), once=True), env, tmp)
        wait_for("the service to serve v2", lambda: served_version(base) == "2", log=log)
        time.sleep(2)  # and a little after the swap
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-4000:]
    assert f"job promote: promoted, models:/{MODEL}/2 now @champion" in out.stdout
    assert f"job keep: kept, models:/{MODEL}/3 @challenger; @champion stays v2" in out.stdout
    aliases = {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}
    assert aliases == {"champion": "2", "challenger": "3"}
    assert loop.records and not loop.failures(), loop.failures()[:5]
    versions = [v for _, v, _ in loop.records]
    assert set(versions) == {"1", "2"}, set(versions)
    assert "hot reload: itransformer-etth1 now serves version 2 (was 1)" in log.read_text()
    # v3 got @challenger only: the service, watching @champion, stays on v2.
    time.sleep(2)
    assert served_version(base) == "2"

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


def register_copy_of(client: MlflowClient, version: str, tmp: Path, *, corrupt: bool) -> str:
    """A new version holding `version`'s artifacts, with its weights file cut short when `corrupt`."""
    import mlflow

    dst = tmp / f"copy-of-v{version}-{'corrupt' if corrupt else 'good'}"
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(MODEL, version),
            dst_path=str(dst),
            tracking_uri=client.tracking_uri,
        )
    )
    if corrupt:
        (weights,) = local.rglob("weights.safetensors")
        weights.write_bytes(weights.read_bytes()[:1000])
    exp = client.get_experiment_by_name("seer-hot-reload") or client.get_experiment(
        client.create_experiment("seer-hot-reload")
    )
    run = client.create_run(exp.experiment_id)
    client.log_artifacts(run.info.run_id, str(local), "model")
    client.set_terminated(run.info.run_id)
    mv = client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run.info.run_id)
    shutil.rmtree(dst, ignore_errors=True)
    return str(mv.version)


def refusal(base: str) -> dict | None:
    return httpx.get(f"{base}/readyz", timeout=30).json()["reload"][MODEL].get("refused")


def test_a_corrupt_version_forced_onto_champion_is_refused(stack, served):
    tmp, _, client = stack
    base, log = served
    assert served_version(base) == "2"
    v4 = register_copy_of(client, "2", tmp, corrupt=True)
    assert v4 == "4"
    with RequestLoop(base, threads=1) as loop:
        client.set_registered_model_alias(MODEL, "champion", v4)
        refused = wait_for("the refusal of v4 in /readyz", lambda: refusal(base), log=log)
        time.sleep(1.5)  # a poll or two more: not retried
    assert refused["version"] == "4" and "weights" in refused["error"]
    assert not loop.failures() and {v for _, v, _ in loop.records} == {"2"}
    ready = httpx.get(f"{base}/readyz", timeout=30)
    assert ready.status_code == 200 and ready.json()["reload"][MODEL]["version"] == "2"
    metrics = httpx.get(f"{base}/metrics", timeout=30).text
    assert f'seer_model_reload_failures_total{{model="{MODEL}"}} 1.0' in metrics
    assert f'seer_model_reloads_total{{model="{MODEL}"}} 1.0' in metrics
    assert log.read_text().count("refused itransformer-etth1 version 4") == 1


def test_the_service_outlives_the_tracking_server_and_reconnects(stack, served, tracking_server: TrackingServer):
    tmp, _, client = stack
    base, log = served
    tracking_server.stop(hard=True)
    try:
        with RequestLoop(base, threads=1) as loop:
            wait_for(
                "/readyz to report the tracking server unreachable",
                lambda: httpx.get(f"{base}/readyz", timeout=30).json()["reload"][MODEL]["tracking"] != "ok",
                timeout=30,
                log=log,
            )
            time.sleep(3)  # several failed polls, backing off
        assert loop.records and not loop.failures(), loop.failures()[:5]
        assert {v for _, v, _ in loop.records} == {"2"}
        assert httpx.get(f"{base}/readyz", timeout=30).status_code == 200
        assert log.read_text().count("retrying with backoff") == 1  # logged once per change of state
    finally:
        tracking_server.start()  # same port, same store
    v5 = register_copy_of(client, "2", tmp, corrupt=False)
    client.set_registered_model_alias(MODEL, "champion", v5)
    wait_for("the service to serve v5 after the server came back", lambda: served_version(base) == v5, log=log)
    ready = httpx.get(f"{base}/readyz", timeout=30).json()["reload"][MODEL]
    assert ready["tracking"] == "ok" and "refused" not in ready
    assert "tracking server reachable again" in log.read_text()
