"""A bounded soak: a real uvicorn server (`python -m service.server`, a subprocess) on loopback takes
32 concurrent clients for `SOAK_S` seconds after a warm-up. Zero errors, and its resident memory grows by
less than `RSS_BOUND_MB` from the end of the warm-up to the end of the run (a leak of ~6 KB per request
would cross it at the ~400 requests/s an httpx client reaches here). Nothing is timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from seer.procs import free_port
from tests.service.service_fixtures import hourly_stamps, make_bundle, point_history

pytestmark = pytest.mark.slow

CONCURRENCY = 32
WARMUP_S = 3.0
SOAK_S = 20.0
RSS_BOUND_MB = 50.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


async def drive(base: str, seconds: float, outcomes: Counter[str]) -> None:
    """CONCURRENCY clients, each posting forecasts back to back until the time is up."""
    body = {"history": point_history(), "timestamps": hourly_stamps()}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    r = await client.post("/v1/models/m/forecast", json=body)
                    outcomes[
                        "ok" if r.status_code == 200 and len(r.json()["forecast"]) == 8 else str(r.status_code)
                    ] += 1
                except httpx.HTTPError as e:
                    outcomes[type(e).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc (Linux)")
def test_soak(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "m")
    port = free_port()
    env = {**os.environ, "SEER_MODELS": f"m={bundle}", "SEER_PORT": str(port), "SEER_HOST": "127.0.0.1"}
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "service.server"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "service not ready within 120 s"
            time.sleep(0.2)

        warmup: Counter[str] = Counter()
        asyncio.run(drive(base, WARMUP_S, warmup))
        before = rss_mb(proc.pid)
        outcomes: Counter[str] = Counter()
        asyncio.run(drive(base, SOAK_S, outcomes))
        after = rss_mb(proc.pid)
        metrics = httpx.get(f"{base}/metrics").text
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    errors = {k: v for k, v in (warmup + outcomes).items() if k != "ok"}
    print(f"soak: {outcomes['ok']} ok in {SOAK_S:.0f} s, errors {errors}, RSS {before:.1f} -> {after:.1f} MB")
    assert not errors and outcomes["ok"] > CONCURRENCY
    assert after - before < RSS_BOUND_MB, (before, after)
    # The server counted the same requests, and its access log is JSON lines with request ids.
    assert 'seer_requests_total{endpoint="/v1/models/{name}/forecast",method="POST",model="m",status="200"}' in metrics
    lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert len(lines) >= outcomes["ok"]
    last = json.loads(lines[-1])
    assert last["status"] == 200 and len(last["request_id"]) == 32
