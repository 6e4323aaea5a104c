"""Series per second scoring one synthetic long file (`--series` daily series, lookback + 20 points each)
with `seer score` (local, one process) and with Spark (`score_spark`, `local[2]`), the same registered
model (a tiny any-variate Moirai-MoE, 8 sample paths, lookback 32: one series per forward pass) in a
temporary MLflow store. Prints a table and writes bench/results/score.json. Figures are wall time on
this machine, including file reading and writing (local) and the Spark job (not Spark's start-up)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, write  # noqa: E402


def synthetic(path: Path, series: int, length: int) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    t = np.arange(length)
    ids = np.repeat([f"s{k:05d}" for k in range(series)], length)
    start = datetime(2024, 1, 1)
    ds = [start + timedelta(days=int(i)) for i in t] * series
    y = rng.uniform(1, 100, size=(series, 1)) * (1 + 0.1 * np.sin(2 * np.pi * t / 7)) + rng.normal(
        size=(series, length)
    )
    frame = pl.DataFrame({"unique_id": ids, "ds": ds, "y": y.reshape(-1)})
    frame.write_parquet(path)
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (local and each Spark worker)")
    args = ap.parse_args()
    # One setting for both engines: the local process and every Spark Python worker (which inherit the
    # environment) get the same torch threads, so the comparison is engines, not thread counts.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    import mlflow

    from seer.score import load_model, score_files, score_spark
    from tests.inference.forecast_bundles import P_L, make_moirai_bundle
    from training.tracking import log_and_register

    tmp = Path(tempfile.mkdtemp(prefix="seer-bench-score-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.chdir(tmp)
    with mlflow.start_run():
        log_and_register(make_moirai_bundle(tmp / "bundle"), "bench-score", np.zeros((P_L, 1)))
    frame = synthetic(tmp / "series.parquet", args.series, P_L + 20)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    predictor = load_model("models:/bench-score@champion")
    totals, _ = score_files(predictor, str(tmp / "series.parquet"), tmp / "out.parquet")
    local_s = time.perf_counter() - t0
    rows.append({"engine": "seer score (1 process)", "series": totals.series, "seconds": round(local_s, 2)})

    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    sdf = spark.read.parquet(str(tmp / "series.parquet")).cache()
    sdf.count()
    t0 = time.perf_counter()
    out = score_spark(sdf, "bench-score@champion", tracking_uri=uri).filter("error is null")
    scored = out.select("unique_id").distinct().count()
    spark_s = time.perf_counter() - t0
    spark.stop()
    rows.append({"engine": "Spark local[2] (applyInPandas)", "series": scored, "seconds": round(spark_s, 2)})
    for r in rows:
        r["series_per_s"] = round(r["series"] / r["seconds"], 1)
    print(f"{'engine':34s} {'series':>7s} {'seconds':>8s} {'series/s':>9s}   ({machine()})")
    for r in rows:
        print(f"{r['engine']:34s} {r['series']:7d} {r['seconds']:8.2f} {r['series_per_s']:9.1f}")
    payload = {
        "model": "tiny Moirai-MoE (8 paths, lookback 32, horizon 16)",
        "rows_in": frame.height,
        "threads_per_process": args.threads,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "results": rows,
    }
    print("wrote", write("score", payload))


if __name__ == "__main__":
    main()
