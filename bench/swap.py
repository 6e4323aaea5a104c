"""Hot reload under load: a running `seer serve` switches model versions → the "swap" key of
bench/results/service.json (other keys are kept).

Trains `itransformer-etth1 --smoke` twice into a fresh SQLite store (v1 @champion, v2 registered
without an alias), serves `@champion` with `SEER_RELOAD_INTERVAL_S=0.5`, and runs a steady loop of
forecasts from `--clients` concurrent httpx clients (asyncio, keep-alive). After `--before` seconds it
moves @champion to v2, and keeps going until the service answers with v2 and `--after` seconds more.
`before`: requests sent before the alias moved; `during`: from the alias move until `--after` seconds
past the first v2 answer. `errors` = non-200 answers + transport errors over the whole run.

    python bench/swap.py                    # 8 clients, 5 s before, 3 s after the swap
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import read, write  # noqa: E402
from bench.service import RECIPE, registered_model  # noqa: E402
from seer.procs import free_port, wait_http  # noqa: E402


def p99(values: list[float]) -> float:
    return round(float(np.percentile(values, 99)) * 1000.0, 2) if values else float("nan")


async def load(url: str, body: dict[str, Any], clients: int, move, before: float, after: float) -> dict[str, Any]:
    records: list[tuple[float, float, int, str]] = []  # start, seconds, status, version
    marks: dict[str, float] = {}
    stop = asyncio.Event()

    async def client() -> None:
        async with httpx.AsyncClient(timeout=30) as c:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    r = await c.post(url, json=body)
                    status, version = r.status_code, r.json()["model"]["version"] if r.status_code == 200 else ""
                except httpx.HTTPError:
                    status, version = -1, ""
                records.append((start, time.perf_counter() - start, status, version))
                if version == "2" and "served" not in marks:
                    marks["served"] = time.perf_counter()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(before)
    await asyncio.to_thread(move)
    marks["moved"] = time.perf_counter()  # the alias is in the registry from here on
    while "served" not in marks:
        await asyncio.sleep(0.05)
    await asyncio.sleep(after)
    stop.set()
    await asyncio.gather(*tasks)
    first = min(r[0] for r in records)
    before_rs = [r for r in records if r[0] < marks["moved"] and r[0] > first + 1.0]  # skip the first second
    during = [r for r in records if r[0] >= marks["moved"]]
    return {
        "clients": clients,
        "requests": len(records),
        "requests_during": len(during),
        "errors": sum(1 for r in records if r[2] != 200),
        "p99_ms_before": p99([r[1] for r in before_rs]),
        "p99_ms_during": p99([r[1] for r in during]),
        "swap_s": round(marks["served"] - marks["moved"], 3),
        "versions_after_swap": sorted({r[3] for r in records if r[0] > marks["served"]}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--before", type=float, default=5.0, help="seconds of load before the alias moves")
    ap.add_argument("--after", type=float, default=3.0, help="seconds of load after v2 first answers")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="seer-bench-swap-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "GIT_PYTHON_REFRESH": "quiet"}
    for _ in range(2):  # v1 becomes @champion; v2 gets no alias (a champion exists)
        print(f"training {RECIPE} --smoke into {tmp} ...", flush=True)
        train = [sys.executable, "-m", "seer", "train", RECIPE, "--smoke"]
        subprocess.run(train, cwd=tmp, env=env, check=True, capture_output=True)
    model = registered_model(uri)
    port = free_port()
    serve_env = {**env, "SEER_RELOAD_INTERVAL_S": "0.5", "SEER_LOG_REQUESTS": "false"}
    log = tmp / "serve.log"
    with log.open("w") as out:
        cmd = [sys.executable, "-m", "seer", "serve", "--models", f"{model}@champion", "--port", str(port)]
        proc = subprocess.Popen(cmd, cwd=tmp, env=serve_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", proc, log)
        ex = httpx.get(f"{base}/v1/models/{model}").json()["example_input"]
        body = {"history": ex["history"], "timestamps": ex["timestamps"]}

        from mlflow import MlflowClient

        # Made and warmed before the clock runs: importing MLflow and opening the store take seconds
        # on a loaded machine, which is the benchmark's cost, not the service's.
        client = MlflowClient(uri)
        client.get_model_version_by_alias(model, "champion")

        def move() -> None:
            client.set_registered_model_alias(model, "champion", "2")

        url = f"{base}/v1/models/{model}/forecast"
        result = asyncio.run(load(url, body, args.clients, move, args.before, args.after))
    finally:
        proc.terminate()
        proc.wait(30)
    head = ("clients", "requests", "during", "errors", "p99 before", "p99 during", "swap s")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (8, 9, 7, 7, 11, 11, 7), strict=True)))
    r = result
    print(
        f"{r['clients']:>8} {r['requests']:>9} {r['requests_during']:>7} {r['errors']:>7} "
        f"{r['p99_ms_before']:>9.1f}ms {r['p99_ms_during']:>9.1f}ms {r['swap_s']:>7.2f}"
    )
    # Only the "swap" key is this script's: the rest (and the load run's commit/machine/command) is kept.
    old = read("service")
    path = write("service", {"swap": {}})
    stamp = read("service")
    body_out = {**old, "swap": {**result, "commit": stamp["commit"], "machine": stamp["machine"]}}
    body_out["swap"]["command"] = stamp["command"]
    body_out["swap"]["reload_interval_s"] = 0.5
    path.write_text(json.dumps(body_out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0 if result["errors"] == 0 and result["versions_after_swap"] == ["2"] else 1


if __name__ == "__main__":
    sys.exit(main())
