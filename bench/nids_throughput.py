"""Flows scored per second by FlowTransformer, in the model, through the predictor and over HTTP (JSON and
the streamed bulk endpoint), beside LightGBM in the same command -> bench/results/nids_throughput.json.

- model: windows/s of `model(flows, pad_mask)` on ready tensors (the recipe's default size, the NetFlow v2
  dimensions: W 8, 28 numeric + 9 categorical features, 5 classes), for a few batch sizes; the official
  demo reports ~6k windows/s in evaluation (a figure quoted, not re-run: Keras, their machine).
- baseline: LightGBM (trained here on the first 50k flows of NF-BoT-IoT-v2) predicting single flows.
- predictor: flows/s of `ClassifyPredictor.score_frame` from a polars frame (checks, encoding, windows,
  model, softmax), the path of files and holdouts.
- streaming: the bulk scorer in-process (`csv_chunks` + `score_file`) on CSVs of 250k and 1M flows fed
  in 1 MiB pieces: flows/s and the process's peak memory over its start, per file size (each in a fresh
  process, so the peaks are comparable).
- http: `seer serve` in its own process; JSON requests of 512 flows from 4 concurrent clients; the bulk
  endpoint fed the 250k and 1M-flow CSVs in 1 MiB pieces, NDJSON read as it streams: flows/s, and the
  server's peak memory (VmHWM) over its peak before the upload.
Random weights (speed does not depend on them); weights from a bundle with `--bundle`.

    python bench/nids_throughput.py                 # ~10 min on 2 cores
    python bench/nids_throughput.py --quick         # small sizes, temporary output
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import commit, machine, write  # noqa: E402

OFFICIAL_WINDOWS_PER_S = 6000  # FlowTransformer's demo notebook, evaluation on NF-UNSW-NB15-v2 (quoted)
NF_FILE = Path(__file__).resolve().parents[1] / "data" / "flows" / "datasets" / "NF-BoT-IoT-v2_reduced.csv.gz"
PIECE = 1 << 20  # bytes per upload piece


def nf_frame(rows: int | None = None) -> Any:
    from data.flows.formats import NETFLOW_V2
    from data.flows.readers import read_flows

    frame = read_flows(NF_FILE, NETFLOW_V2)
    return frame if rows is None else frame.head(rows)


def make_bundle(directory: Path, frame: Any, weights: str | None) -> Path:
    """A default-size FlowTransformer bundle with a transform fit on `frame` (or the bundle at `weights`)."""
    import torch

    from data.flows.formats import NETFLOW_V2
    from data.flows.readers import TARGET, with_target
    from data.flows.transform import FlowTransform
    from inference.bundle import save_bundle
    from signals.nids_flow import FlowTransformer, FlowTransformerConfig

    if weights:
        return Path(weights)
    named = with_target(frame, NETFLOW_V2, "attack")
    classes = ["Benign", *sorted(set(named[TARGET].to_list()) - {"Benign"})]
    t = FlowTransform.fit(named, NETFLOW_V2, top_k=32, classes=classes, benign="Benign", window=8)
    cfg = FlowTransformerConfig(n_numeric=len(t.numeric), n_categorical=len(t.categorical), n_classes=len(classes))
    torch.manual_seed(0)
    meta = {
        "name": "nids-bench",
        "model": "flowtransformer",
        "task": "classify",
        "model_config": cfg.to_dict(),
        "transform": {**t.to_dict(), "labels": "attack", "dataset": "nf-bot-iot-v2"},
        "example_input": {"flows": frame.head(8).select(t.features).to_dicts()},
        "metrics": {},
    }
    return save_bundle(directory, FlowTransformer(cfg), meta)


def best_rate(fn: Any, items: int, repeats: int) -> float:
    """Items per second of the fastest of `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return items / min(times)


def model_rows(predictor: Any, batches: list[int], repeats: int) -> list[dict[str, Any]]:
    """Windows/s of the model on ready tensors: whole windows (every window of a stream but its first W-1)
    at each batch size, and one batch with 1 % of its windows left-padded, which takes the attention op's
    masked path for the whole batch."""
    import torch

    c = predictor.model.config
    g = torch.Generator().manual_seed(0)
    rows = []
    for b, padded in [*((b, False) for b in batches), (batches[1], True)]:
        numeric = torch.rand(b, c.window, c.n_numeric, generator=g)
        codes = torch.randint(0, c.n_levels, (b, c.window, c.n_categorical), generator=g).float()
        flows = torch.cat([numeric, codes], -1)
        pad = torch.zeros(b, c.window, dtype=torch.bool)
        if padded:
            pad[: b // 100, :4] = True  # as at the start of requests and files

        def run(flows: Any = flows, pad: Any = pad) -> None:
            with torch.no_grad():
                predictor.model(flows, pad)

        rate = best_rate(run, b, repeats)
        what = "model, 1 % of windows padded" if padded else "model"
        ratio = round(rate / OFFICIAL_WINDOWS_PER_S, 1)
        rows.append({"path": what, "batch": b, "windows_per_s": round(rate), "vs_official_6k": ratio})
        print(f"{what:30s} batch {b:6d}: {rate:10.0f} windows/s ({ratio}x the official 6k)")
    return rows


def lightgbm_row(predictor: Any, frame: Any, n: int, repeats: int) -> dict[str, Any]:
    import lightgbm as lgb

    from data.flows.formats import NETFLOW_V2
    from data.flows.readers import TARGET, with_target

    t = predictor.transform
    x = t.encode(frame)
    y = t.class_index(with_target(frame, NETFLOW_V2, "attack")[TARGET])
    gbt = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.1, num_leaves=31, verbose=-1, n_jobs=2, random_state=0)
    cat = list(range(len(t.numeric), x.shape[1]))
    gbt.fit(x[:50_000], y[:50_000], categorical_feature=cat)
    test = x[:n]
    rate = best_rate(lambda: gbt.predict_proba(test), len(test), repeats)
    print(f"lightgbm ({gbt.booster_.num_trees()} trees): {rate:10.0f} flows/s")
    return {
        "path": "lightgbm predict_proba",
        "batch": len(test),
        "flows_per_s": round(rate),
        "trees": gbt.booster_.num_trees(),
    }


def predictor_row(predictor: Any, frame: Any, repeats: int) -> dict[str, Any]:
    rate = best_rate(lambda: predictor.score_frame(frame), frame.height, repeats)
    print(f"predictor.score_frame: {rate:10.0f} flows/s")
    return {"path": "predictor.score_frame", "batch": frame.height, "flows_per_s": round(rate)}


STREAM_SCRIPT = """
import resource, sys, time, json
sys.path.insert(0, {root!r})
import torch; torch.set_num_threads({threads})
from inference.predictor import load_predictor
from inference.tasks.classify.bulk import csv_chunks, score_file
p = load_predictor({bundle!r})
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
def pieces():
    with open({path!r}, "rb") as f:
        while chunk := f.read({piece}):
            yield chunk
t0 = time.perf_counter()
n = sum(len(probs) for _, probs in score_file(p, csv_chunks(p, pieces(), 4096)))
took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"flows": n, "seconds": took, "start_kib": start, "peak_kib": peak}}))
"""


def streaming_rows(bundle: Path, files: dict[int, Path], threads: int) -> list[dict[str, Any]]:
    rows = []
    root = str(Path(__file__).resolve().parents[1])
    for n, path in files.items():
        code = STREAM_SCRIPT.format(root=root, threads=threads, bundle=str(bundle), path=str(path), piece=PIECE)
        out = json.loads(
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        )
        grew = (out["peak_kib"] - out["start_kib"]) / 1024
        rate = out["flows"] / out["seconds"]
        print(f"stream {n:8d} flows in-process: {rate:10.0f} flows/s, peak memory +{grew:.0f} MiB over start")
        rows.append(
            {
                "path": "bulk scorer in-process (csv_chunks + score_file)",
                "flows": out["flows"],
                "file_mib": round(path.stat().st_size / 2**20, 1),
                "flows_per_s": round(rate),
                "peak_mib_over_start": round(grew, 1),
                "peak_mib": round(out["peak_kib"] / 1024, 1),  # the process's whole peak, imports included
            }
        )
    return rows


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def serve(bundle: Path, max_body: int) -> tuple[subprocess.Popen, str]:
    from seer.procs import free_port, wait_http

    port = free_port()
    env = {
        **os.environ,
        "SEER_LOG_REQUESTS": "false",
        "SEER_MAX_BODY_BYTES": str(max_body),
        "SEER_CLASSIFY_MAX_UPLOAD_BYTES": str(max_body),
        "SEER_BODY_TIMEOUT_S": "600",
        "SEER_REQUEST_TIMEOUT_S": "600",
    }
    cmd = [sys.executable, "-m", "seer", "serve", "--models", f"nids={bundle}", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/readyz", proc)
    return proc, f"http://127.0.0.1:{port}"


async def json_rate(base: str, body: dict[str, Any], n_flows: int, requests: int, clients: int) -> float:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

        async def worker(k: int) -> None:
            for _ in range(k):
                r = await client.post("/v1/models/nids/classify", json=body)
                r.raise_for_status()

        await worker(1)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(requests // clients) for _ in range(clients)))
        return (requests // clients) * clients * n_flows / (time.perf_counter() - t0)


def bulk_upload(base: str, path: Path) -> tuple[int, float]:
    import httpx

    def pieces() -> Any:
        with open(path, "rb") as f:
            while chunk := f.read(PIECE):
                yield chunk

    lines = 0
    t0 = time.perf_counter()
    headers = {"content-type": "text/csv"}
    with httpx.stream(
        "POST", f"{base}/v1/models/nids/classify/bulk", content=pieces(), headers=headers, timeout=900
    ) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith('{"error"'):
                raise RuntimeError(line)
            lines += bool(line)
    return lines, time.perf_counter() - t0


def http_rows(bundle: Path, frame: Any, files: dict[int, Path], requests: int) -> list[dict[str, Any]]:
    rows = []
    biggest = max(p.stat().st_size for p in files.values())
    proc, base = serve(bundle, max_body=biggest + (1 << 20))
    try:
        body = {"flows": frame.head(512).to_dicts()}
        rate = asyncio.run(json_rate(base, body, 512, requests, clients=4))
        print(f"http JSON, 512 flows x 4 clients: {rate:10.0f} flows/s")
        rows.append(
            {"path": "http POST /classify (JSON)", "flows_per_request": 512, "clients": 4, "flows_per_s": round(rate)}
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for n, path in files.items():
        proc, base = serve(bundle, max_body=biggest + (1 << 20))
        try:
            before = vm_hwm_kib(proc.pid)
            lines, took = bulk_upload(base, path)
            grew = (vm_hwm_kib(proc.pid) - before) / 1024
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print(f"http bulk {n:8d} flows: {lines / took:10.0f} flows/s, server peak memory +{grew:.0f} MiB")
        rows.append(
            {
                "path": "http POST /classify/bulk (CSV in, NDJSON out, streamed)",
                "flows": lines,
                "file_mib": round(path.stat().st_size / 2**20, 1),
                "flows_per_s": round(lines / took),
                "server_peak_mib_over_ready": round(grew, 1),
            }
        )
    return rows


def csv_files(frame: Any, sizes: list[int], directory: Path) -> dict[int, Path]:
    """CSV files of `sizes` flows: NF-BoT-IoT-v2 rows repeated in file order (every column, labels too)."""
    import polars as pl

    out = {}
    for n in sizes:
        reps = -(-n // frame.height)
        big = pl.concat([frame] * reps).head(n)
        path = directory / f"flows_{n}.csv"
        big.write_csv(path)
        out[n] = path
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a temporary output file")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the in-process paths")
    ap.add_argument("--bundle", default=None, help="a trained NetFlow v2 bundle (default: random weights)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from inference.predictor import load_predictor

    tmp = Path(tempfile.mkdtemp(prefix="seer-nids-tp-"))
    frame = nf_frame(20_000 if args.quick else None)
    bundle = make_bundle(tmp / "bundle", frame, args.bundle)
    p = load_predictor(bundle)
    repeats = 2 if args.quick else 5
    sizes = [5_000, 20_000] if args.quick else [250_000, 1_000_000]
    files = csv_files(frame, sizes, tmp)
    load0 = os.getloadavg()[0]
    rows = model_rows(p, [1024, 8192] if args.quick else [256, 1024, 8192], repeats)
    rows.append(lightgbm_row(p, frame, 8192 if args.quick else 100_000, repeats))
    rows.append(predictor_row(p, frame.head(10_000 if args.quick else 100_000), repeats))
    rows += streaming_rows(bundle, files, args.threads)
    rows += http_rows(bundle, frame, files, requests=16 if args.quick else 200)
    payload = {
        "baseline": f"LightGBM predict in the same command; the official demo's ~{OFFICIAL_WINDOWS_PER_S} windows/s "
        "(quoted)",
        "threads": args.threads,
        "server_torch_threads": 1,
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "weights": args.bundle or "random (seeded)",
        "rows": rows,
        "notes": "server memory: the bulk route reads its upload as it arrives (the generic body limit passes "
        "streamed routes through unbuffered); the in-process rows are the scorer itself",
    }
    if args.quick:
        out = tmp / "nids_throughput_quick.json"
        out.write_text(json.dumps({"commit": commit(), "machine": machine(), **payload}, indent=2))
        print(f"quick results (not in bench/results): {out}")
    else:
        print(f"-> {write('nids_throughput', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
