"""The acceptance path with real processes: `seer train --smoke` into a SQLite MLflow store (registered
under its own name, `<name>-smoke`), then `seer serve` as a real HTTP server on loopback, queried with
httpx; and `seer demo --smoke`, which serves the version it just trained, not the older champion."""

import os
import subprocess
import sys
import time

import httpx
import pytest

from seer.procs import free_port

pytestmark = pytest.mark.slow
NAME = "itransformer-etth1-smoke"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}
    train = subprocess.run(
        [sys.executable, "-m", "seer", "train", "itransformer-etth1", "--smoke"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert "registered models:/itransformer-etth1-smoke/1 (now @champion)" in train.stdout

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "seer", "serve", "--models", f"{NAME}@champion", "--port", str(port)],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "service not ready within 120 s"
            time.sleep(0.3)
        yield client, tmp, env
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)


def test_ready_and_metadata(server):
    server, _, _ = server
    assert server.get("/healthz").status_code == 200
    info = server.get(f"/v1/models/{NAME}").json()
    assert (info["lookback"], info["horizon"], info["alias"], str(info["version"])) == (96, 96, "champion", "1")
    assert info["uses_timestamps"] and len(info["variates"]) == 7


def test_forecast_is_h_by_n(server):
    server, _, _ = server
    ex = server.get(f"/v1/models/{NAME}").json()["example_input"]
    r = server.post(f"/v1/models/{NAME}/forecast", json={"history": ex["history"], "timestamps": ex["timestamps"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["forecast"]) == 96 and all(len(row) == 7 for row in body["forecast"])
    assert body["timestamps"][0] > ex["timestamps"][-1]
    assert body["model"]["name"] == NAME


def test_three_row_history_is_a_4xx_that_says_why(server):
    server, _, _ = server
    ex = server.get(f"/v1/models/{NAME}").json()["example_input"]
    r = server.post(
        f"/v1/models/{NAME}/forecast",
        json={"history": ex["history"][:3], "timestamps": ex["timestamps"][:3]},
    )
    assert 400 <= r.status_code < 500
    assert "96" in r.json()["detail"]


def test_the_smoke_demo_serves_what_it_just_trained(server):
    _, tmp, env = server  # version 1 (@champion) exists already
    demo = subprocess.run(
        [sys.executable, "-m", "seer", "demo", "--smoke", "--threads", "1"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert f"registered models:/{NAME}/2\n" in demo.stdout  # not @champion: that stays v1
    assert f"starting: seer serve --models {NAME}/2 " in demo.stdout
    assert "model version 2)" in demo.stdout
