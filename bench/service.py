"""Serving under load: `seer serve` vs `mlflow models serve` on the same registered model → bench/results/service.json.

Baseline: `mlflow models serve -m models:/NAME@champion --env-manager local` (MLflow's pyfunc scoring
server, the model's pyfunc flavor from `inference/pyfunc_model.py`), what a user would run instead.
Both serve the model `seer train itransformer-etth1 --smoke` registers in a fresh SQLite store, with one
uvicorn worker each and one torch thread each (`seer serve`'s default; `OMP_NUM_THREADS=1` for MLflow),
and both get the model's own example input: seer `{"history", "timestamps"}`, MLflow the same window
as `{"dataframe_split": {"columns": ["date", variates..], "data": rows}}`. Their forecasts are checked
to agree before anything is timed.

Load: `wrk` (Debian package `wrk`; an asyncio/httpx client tops out near 400 requests/s on 2 cores, below
what it would measure), one thread, a separate process, keep-alive connections, each concurrency for a
fixed duration, the two servers alternating per concurrency so both see the same background load.
`rps` counts 2xx answers per second; `errors` = non-2xx + socket errors (connect, read, write, timeout
past `--timeout`); latency percentiles from wrk's own histogram. `server_cpu_ms` is the server process
tree's CPU time per answered request (from /proc), which shared machines distort less than wall time.

    python bench/service.py                          # 1, 8, 32, 128 connections × 12 s each, ~3 minutes
    python bench/service.py --duration 5 --concurrency 32
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import read, write  # noqa: E402
from seer.procs import free_port, wait_http  # noqa: E402

RECIPE = "itransformer-etth1"
BASELINE = "mlflow models serve (pyfunc scoring server), same model version, same input window"


def registered_model(tracking_uri: str) -> str:
    """The one model `seer train RECIPE --smoke` registered in a fresh store (its name may carry a suffix)."""
    from mlflow import MlflowClient

    names = [m.name for m in MlflowClient(tracking_uri).search_registered_models() if m.name.startswith(RECIPE)]
    if len(names) != 1:
        raise RuntimeError(f"expected one registered {RECIPE} model in {tracking_uri}, found {names}")
    return names[0]


# wrk prints its summary through `done`: one JSON line, latencies in microseconds.
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (Linux /proc; 0 elsewhere)."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_wrk(url: str, body: Path, lua: Path, connections: int, seconds: float, timeout_s: int) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={timeout_s}s", "-s", str(lua), url]
    out = subprocess.run(cmd, env={**os.environ, "BODY_FILE": str(body)}, capture_output=True, text=True, check=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no RESULT line:\n{out.stdout}\n{out.stderr}")
    return dict(json.loads(line.removeprefix("RESULT ")))


def measure(server: dict[str, Any], connections: int, args: argparse.Namespace, lua: Path) -> dict[str, Any]:
    cpu0 = tree_cpu_seconds(server["proc"].pid)
    r = run_wrk(server["url"], server["body"], lua, connections, args.duration, args.timeout)
    cpu = tree_cpu_seconds(server["proc"].pid) - cpu0
    seconds = r["duration_us"] / 1e6
    answered = r["requests"] - r["status"]
    errors = r["status"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return {
        "server": server["name"],
        "concurrency": connections,
        "duration_s": round(seconds, 2),
        "rps": round(answered / seconds, 1),
        "p50_ms": round(r["p50_us"] / 1000, 2),
        "p95_ms": round(r["p95_us"] / 1000, 2),
        "p99_ms": round(r["p99_us"] / 1000, 2),
        "errors": errors,
        "requests": r["requests"],
        "server_cpu_ms": round(1000 * cpu / max(answered, 1), 3),
        "workers": 1,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8, 32, 128])
    ap.add_argument("--duration", type=float, default=12.0, help="seconds per server and concurrency")
    ap.add_argument("--timeout", type=int, default=10, help="wrk's per-request timeout, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temporary store, bodies and server logs")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("bench/service.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="seer-bench-service-"))
    bin_dir = str(Path(sys.executable).parent)  # `mlflow models serve` runs `uvicorn` from PATH
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "GIT_PYTHON_REFRESH": "quiet",
    }
    print(f"training {RECIPE} --smoke into {tmp} ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "seer", "train", RECIPE, "--smoke"], cwd=tmp, env=env, check=True, capture_output=True
    )
    model = registered_model(env["MLFLOW_TRACKING_URI"])
    lua = tmp / "post.lua"
    lua.write_text(WRK_LUA)
    seer_port, mlflow_port = free_port(), free_port()
    with ExitStack() as stack:
        servers: list[dict[str, Any]] = []
        for name, cmd, extra_env, ready in (
            (
                "seer",
                [sys.executable, "-m", "seer", "serve", "--models", f"{model}@champion", "--port", str(seer_port)],
                {},
                f"http://127.0.0.1:{seer_port}/readyz",
            ),
            (
                "mlflow",
                [f"{bin_dir}/mlflow", "models", "serve", "-m", f"models:/{model}@champion", "--env-manager", "local"]
                + ["-p", str(mlflow_port), "-w", "1"],
                {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
                f"http://127.0.0.1:{mlflow_port}/ping",
            ),
        ):
            log = tmp / f"{name}.log"
            handle = stack.enter_context(log.open("w"))
            proc = subprocess.Popen(cmd, cwd=tmp, env={**env, **extra_env}, stdout=handle, stderr=subprocess.STDOUT)
            stack.callback(lambda p=proc: (p.terminate(), p.wait(timeout=30)))
            servers.append({"name": name, "proc": proc, "log": log, "ready": ready})
        for s in servers:
            wait_http(s["ready"], s["proc"], s["log"])
        seer, mlflow = servers
        info = httpx.get(f"http://127.0.0.1:{seer_port}/v1/models/{model}").json()
        example, variates = info["example_input"], info["variates"]
        seer_body = {"history": example["history"], "timestamps": example["timestamps"]}
        rows = [[t, *row] for t, row in zip(example["timestamps"], example["history"], strict=True)]
        mlflow_body = {"dataframe_split": {"columns": ["date", *variates], "data": rows}}
        seer.update(url=f"http://127.0.0.1:{seer_port}/v1/models/{model}/forecast", body=tmp / "seer.json")
        mlflow.update(url=f"http://127.0.0.1:{mlflow_port}/invocations", body=tmp / "mlflow.json")
        seer["body"].write_text(json.dumps(seer_body))
        mlflow["body"].write_text(json.dumps(mlflow_body))

        # Same model, same window: the two answers must agree before either is timed.
        ours = httpx.post(seer["url"], json=seer_body, timeout=60).raise_for_status().json()["forecast"]
        theirs = httpx.post(mlflow["url"], json=mlflow_body, timeout=60).raise_for_status().json()["predictions"]
        pairs = zip(ours, theirs, strict=True)
        gap = max(abs(a - row[v]) for arow, row in pairs for a, v in zip(arow, variates, strict=True))
        assert gap < 1e-4, f"seer and mlflow disagree by {gap}"
        print(f"both servers ready; forecasts agree to {gap:.2g}; warming up ...", flush=True)
        for s in servers:
            run_wrk(s["url"], s["body"], lua, 8, 3, args.timeout)

        results = []
        for c in args.concurrency:
            for s in servers:
                row = measure(s, c, args, lua)
                results.append(row)
                print(
                    f"{row['server']:7s} c={c:<4d} {row['rps']:8.1f} req/s  p50 {row['p50_ms']:8.2f}  "
                    f"p95 {row['p95_ms']:8.2f}  p99 {row['p99_ms']:8.2f} ms  errors {row['errors']}  "
                    f"cpu/req {row['server_cpu_ms']:.2f} ms",
                    flush=True,
                )
        batches = httpx.get(f"http://127.0.0.1:{seer_port}/metrics").text

    ratios = []
    for c in args.concurrency:
        ours_row, theirs_row = (
            next(r for r in results if r["server"] == n and r["concurrency"] == c) for n in ("seer", "mlflow")
        )
        ratios.append(
            {
                "concurrency": c,
                "rps_ratio": round(ours_row["rps"] / max(theirs_row["rps"], 1e-9), 2),
                "p99_ratio": round(ours_row["p99_ms"] / max(theirs_row["p99_ms"], 1e-9), 3),
                "cpu_per_request_ratio": round(theirs_row["server_cpu_ms"] / max(ours_row["server_cpu_ms"], 1e-9), 2),
            }
        )
    payload: dict[str, Any] = {
        "baseline": BASELINE,
        "load": results,
        "ratios": ratios,
        "setup": {
            "model": f"models:/{model}@champion ({RECIPE} --smoke: lookback 96, horizon 96, 7 variates)",
            "workers": "1 uvicorn worker per server",
            "torch_threads": "1 per server (seer: SEER_TORCH_THREADS default; mlflow: OMP_NUM_THREADS=1)",
            "load_generator": "wrk -t1 (one thread, keep-alive), separate process, same machine",
            "seer_settings": "defaults: SEER_MAX_BATCH_SIZE=32, SEER_MAX_WAIT_MS=1",
            "rps": "2xx answers per second; ratios: rps and p99 seer/mlflow, cpu_per_request mlflow/seer",
        },
        "seer_batches": _batch_summary(batches),
    }
    previous = read("service")
    if "swap" in previous:  # filled by the hot-swap benchmark; not ours to drop
        payload["swap"] = previous["swap"]
    path = write("service", payload)
    print_table(results, ratios)
    print(f"wrote {path}")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _batch_summary(metrics_text: str) -> dict[str, float]:
    """Batches run and requests in them over the whole run (warm-up included), from seer's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    values = {
        s.name: s.value
        for f in text_string_to_metric_families(metrics_text)
        for s in f.samples
        if s.name.startswith("seer_batch_size_")
    }
    count, total = values.get("seer_batch_size_count", 0.0), values.get("seer_batch_size_sum", 0.0)
    return {"batches": count, "requests": total, "mean_batch": round(total / max(count, 1.0), 2)}


def print_table(results: list[dict[str, Any]], ratios: list[dict[str, Any]]) -> None:
    head = ("server", "conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "cpu/req ms")
    print("\n{:7s} {:>5s} {:>9s} {:>9s} {:>9s} {:>9s} {:>7s} {:>11s}".format(*head))
    for r in results:
        print(
            f"{r['server']:7s} {r['concurrency']:5d} {r['rps']:9.1f} {r['p50_ms']:9.2f} {r['p95_ms']:9.2f} "
            f"{r['p99_ms']:9.2f} {r['errors']:7d} {r['server_cpu_ms']:11.2f}"
        )
    print(f"\n{'conc':>5s} {'seer/mlflow req/s':>18s} {'seer/mlflow p99':>16s} {'mlflow/seer cpu per req':>24s}")
    for q in ratios:
        print(f"{q['concurrency']:5d} {q['rps_ratio']:18.2f} {q['p99_ratio']:16.3f} {q['cpu_per_request_ratio']:24.2f}")


if __name__ == "__main__":
    sys.exit(main())
