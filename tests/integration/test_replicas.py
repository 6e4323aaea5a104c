"""Scaling out the service: two `seer serve` replicas (separate processes, separate ports) follow one
`@champion` on one registry — the native `mlflow server` on PostgreSQL of the conftest, the registry the
compose replicas share.

Version 1 is @champion and both replicas serve it; version 2 is registered and @champion moves to it
while a client sends forecasts round-robin to both replicas (what a load balancer does). Each replica
switches to v2 on its own poll, within the reload interval plus a margin for download and warm-up, never
goes back to v1, and not one request fails. The replicas hold no state of their own: for one version
they answer the same input with the same numbers, and v2's numbers are not v1's.

Then the compose proxy's own config (deploy/nginx.conf) runs in a native nginx in front of the replicas:
it spreads requests over both, and when one replica crashes (SIGKILL) no request fails — the ones it
cannot take are retried on the other (`proxy_next_upstream`) and it is skipped after that (`max_fails`).

The versions are tiny iTransformer bundles (tests/inference/forecast_bundles.py) logged to the server
like a training run logs its bundle: no training here, since the point is the replicas, not the model.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlflow import MlflowClient

from seer.procs import free_port, wait_http
from tests.inference.forecast_bundles import make_bundle

from .commands import executable, seer_serve
from .conftest import stop_process

pytestmark = pytest.mark.slow
MODEL = "replicas-tiny"
NGINX = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
RELOAD_INTERVAL_S = 1.0
# Past the interval, a replica downloads v2 from the server, rebuilds and warms it up before it swaps;
# on a busy 2-core machine that has taken seconds, so the bound is generous. Measured here: ~1-2 s.
SWITCH_MARGIN_S = 20.0


def register(client: MlflowClient, bundle: Path) -> str:
    """Log `bundle` as a run's `model` artifact on the server and register it; returns the version."""
    exp = client.get_experiment_by_name("seer-replicas")
    exp_id = exp.experiment_id if exp else client.create_experiment("seer-replicas")
    run = client.create_run(exp_id)
    client.log_artifacts(run.info.run_id, str(bundle), "model")
    client.set_terminated(run.info.run_id)
    return str(client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run.info.run_id).version)


@pytest.fixture(scope="module")
def registry(mlflow_uri, tmp_path_factory):
    """The server's registry with v1 of MODEL as @champion; v2 ready to register."""
    tmp = tmp_path_factory.mktemp("replicas")
    client = MlflowClient(mlflow_uri)
    client.create_registered_model(MODEL)
    assert register(client, make_bundle(tmp / "v1", seed=1)) == "1"
    client.set_registered_model_alias(MODEL, "champion", "1")
    return tmp, client, make_bundle(tmp / "v2", seed=2)


@dataclass(frozen=True)
class Replica:
    proc: subprocess.Popen
    base: str
    log: Path


@pytest.fixture(scope="module")
def replicas(registry, mlflow_uri):
    """Two `seer serve` processes on MODEL@champion, each polling the alias every RELOAD_INTERVAL_S."""
    tmp = registry[0]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "SEER_RELOAD_INTERVAL_S": str(RELOAD_INTERVAL_S),
        "SEER_RELOAD_BACKOFF_MAX_S": "2",
    }
    started: list[Replica] = []
    try:
        for i in range(2):  # both start at once, as `docker compose up --scale forecast=2` starts them
            port, log = free_port(), tmp / f"replica-{i}.log"
            with log.open("w") as out:
                proc = subprocess.Popen(
                    executable(seer_serve(f"{MODEL}@champion", "127.0.0.1", port)),
                    cwd=tmp,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started.append(Replica(proc, f"http://127.0.0.1:{port}", log))
        for r in started:
            wait_http(f"{r.base}/readyz", r.proc, r.log, timeout=240)
        yield started
    finally:
        for r in started:
            stop_process(r.proc)


class RoundRobin:
    """A client loop that sends each forecast to the next replica in turn, as a round-robin load balancer
    does, recording (replica, status, version or error, forecast, time answered) per request."""

    def __init__(self, bases: list[str], body: dict) -> None:
        self.urls = [f"{b}/v1/models/{MODEL}/forecast" for b in bases]
        self.body = body
        self.records: list[tuple[int, int, str, list | None, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            turn = 0
            while not self._stop.is_set():
                replica, turn = turn % len(self.urls), turn + 1
                try:
                    r = client.post(self.urls[replica], json=self.body)
                    if r.status_code == 200:
                        answer = r.json()
                        record = (200, str(answer["model"]["version"]), answer["forecast"])
                    else:
                        record = (r.status_code, r.text, None)
                except httpx.HTTPError as e:
                    record = (-1, repr(e), None)
                self.records.append((replica, *record, time.monotonic()))
                time.sleep(0.01)

    def __enter__(self) -> RoundRobin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def of(self, replica: int) -> list[tuple[int, int, str, list | None, float]]:
        return [r for r in list(self.records) if r[0] == replica]

    def first_time(self, replica: int, version: str) -> float | None:
        return next((r[4] for r in self.of(replica) if r[2] == version), None)


def wait_for(what: str, check, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}:\n{log.read_text()[-2000:]}" for log in logs)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{tails}")
        time.sleep(0.1)


def info(base: str) -> dict:
    return httpx.get(f"{base}/v1/models/{MODEL}", timeout=30).json()


def test_replicas_follow_the_champion_together_and_fail_no_request(registry, replicas):
    _, client, v2_bundle = registry
    bases, logs = [r.base for r in replicas], [r.log for r in replicas]
    assert [(str(info(b)["version"]), info(b)["alias"]) for b in bases] == [("1", "champion")] * 2
    example = info(bases[0])["example_input"]
    body = {"history": example["history"], "timestamps": example["timestamps"]}

    with RoundRobin(bases, body) as loop:
        wait_for("v1 answers from both replicas", lambda: all(len(loop.of(i)) >= 3 for i in (0, 1)), 60, logs)
        assert register(client, v2_bundle) == "2"
        client.set_registered_model_alias(MODEL, "champion", "2")
        moved = time.monotonic()
        wait_for(
            "both replicas to answer with v2",
            lambda: all(loop.first_time(i, "2") for i in (0, 1)),
            RELOAD_INTERVAL_S + SWITCH_MARGIN_S,
            logs,
        )
        switched = time.monotonic()
        time.sleep(1.0)  # and a little traffic after the swap

    failures = [r[:3] for r in loop.records if r[1] != 200]
    assert loop.records and not failures, failures[:5]
    for i in (0, 1):
        versions = [r[2] for r in loop.of(i)]
        flips = sum(a != b for a, b in pairwise(versions))
        # v1 first, then v2 and never v1 again: one switch per replica, no flapping.
        assert versions[0] == "1" and versions[-1] == "2" and flips == 1, versions
        lag = loop.first_time(i, "2") - moved
        print(f"replica {i}: {len(versions)} requests, first v2 answer {lag:.2f} s after the alias moved")
        assert lag <= RELOAD_INTERVAL_S + SWITCH_MARGIN_S
    assert switched - moved <= RELOAD_INTERVAL_S + SWITCH_MARGIN_S

    # Stateless replicas: one version gives one answer wherever it runs; v2 is a different model.
    answers = {(r[0], r[2]): np.asarray(r[3]) for r in loop.records}
    for version in ("1", "2"):
        np.testing.assert_allclose(answers[(0, version)], answers[(1, version)], rtol=1e-5, atol=1e-6)
    assert not np.allclose(answers[(0, "1")], answers[(0, "2")])

    for base, log in zip(bases, logs, strict=True):
        reload = httpx.get(f"{base}/readyz", timeout=30).json()["reload"][MODEL]
        assert reload["version"] == "2" and reload["tracking"] == "ok" and "refused" not in reload, reload
        metrics = httpx.get(f"{base}/metrics", timeout=30).text
        assert f'seer_model_reloads_total{{model="{MODEL}"}} 1.0' in metrics
        assert f"hot reload: {MODEL} now serves version 2 (was 1)" in log.read_text()


def proxy_conf(replicas: list[Replica], port: int) -> str:
    """deploy/nginx.conf for a native nginx: the replicas' addresses listed where compose has Docker's DNS
    answer the service name (`resolve` needs nginx >= 1.27.3, newer than Debian's), on a loopback port."""
    text = NGINX.read_text()
    server = re.search(r"^( *)server forecast:\d+ resolve (.*);\n", text, re.M)
    assert server, "deploy/nginx.conf no longer has the `server forecast:PORT resolve ...;` upstream line"
    indent, params = server.groups()
    lines = "".join(f"{indent}server {r.base.removeprefix('http://')} {params};\n" for r in replicas)
    text = text.replace(server.group(0), lines)
    text, listens = re.subn(r"^( *)listen \d+;", rf"\g<1>listen 127.0.0.1:{port};", text, flags=re.M)
    assert listens == 1
    return text


@pytest.fixture(scope="module")
def proxy(replicas, registry):
    """nginx (Debian's nginx-light; skipped without it) running deploy/nginx.conf in front of the replicas."""
    binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    root = registry[0] / "nginx"
    root.mkdir()
    port = free_port()
    (root / "seer.conf").write_text(proxy_conf(replicas, port))
    temp = " ".join(f"{kind}_temp_path {root / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (root / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # workers must reach the private tmp dirs
        + f"daemon off; worker_processes 1; pid {root / 'nginx.pid'}; error_log {root / 'error.log'};\n"
        + "events {}\n"
        + f"http {{ access_log {root / 'access.log'}; {temp} include {root / 'seer.conf'}; }}\n"
    )
    log = root / "stderr.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(root / "nginx.conf")],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/readyz", proc, log, timeout=30)
        yield base
    finally:
        stop_process(proc)


def forecasts_answered(base: str) -> float:
    """Forecast requests a replica has run, from its own metrics (the requests in its batches)."""
    line = f'seer_batch_size_sum{{model="{MODEL}"}} '
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return next((float(x.removeprefix(line)) for x in text.splitlines() if x.startswith(line)), 0.0)


def test_the_proxy_spreads_requests_and_retries_past_a_crashed_replica(replicas, proxy):
    """Runs last: it kills a replica."""
    example = info(proxy)["example_input"]
    body = {"history": example["history"], "timestamps": example["timestamps"]}
    before = [forecasts_answered(r.base) for r in replicas]
    with httpx.Client(base_url=proxy, timeout=30) as client:
        statuses = [client.post(f"/v1/models/{MODEL}/forecast", json=body).status_code for _ in range(20)]
        assert statuses == [200] * 20
        served = [forecasts_answered(r.base) - b for r, b in zip(replicas, before, strict=True)]
        assert sum(served) == 20 and min(served) >= 5, served  # round robin: both replicas take a share
        # The proxy's own refusal is one line of JSON, like the service's.
        big = client.post(f"/v1/models/{MODEL}/forecast", content=b"0" * (5 << 20))
        assert big.status_code == 413 and "too large" in big.json()["detail"], big.text

    survivor, victim = replicas
    with RoundRobin([proxy], body) as loop:
        wait_for("answers through the proxy", lambda: len(loop.records) >= 10, 30, [survivor.log])
        os.killpg(victim.proc.pid, signal.SIGKILL)  # a crash: open connections reset, the port closed
        victim.proc.wait(10)
        crashed = len(loop.records)
        wait_for("answers after the crash", lambda: len(loop.records) >= crashed + 30, 60, [survivor.log])
    failures = [r[:3] for r in loop.records if r[1] != 200]
    assert not failures, failures[:5]  # a request the dead replica could not answer went to the survivor
    assert httpx.get(f"{proxy}/readyz", timeout=30).status_code == 200
