"""The same registered model scores the same series on Spark (`seer.score.score_spark`: grouped
`applyInPandas`, the pyfunc model loaded by MLflow in each Python worker) as `seer score` does locally:
a local Spark (`local[2]`, Java from the distribution's packages: `.ci/run` installs it), a tiny
Moirai-MoE (any-variate, probabilistic) logged and registered in a fresh MLflow store as training does
(`training.tracking.log_and_register`). Tolerance: 1e-5 relative (the same float32 model on the same
window, one series per pass, seeded; Spark's Python workers run torch with other thread counts, so
reductions may round differently: 1e-7 seen).

The Spark test runs in a pytest process of its own (`test_spark_runs_in_its_own_process`): a Spark session
left behind in the suite's process (its JVM, PySpark's process state) broke later tests that start and
stop servers (tests/integration/test_stack.py) and register models."""

import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seer.cli import main
from tests.inference.forecast_bundles import P_H, P_L, make_moirai_bundle

pyspark = pytest.importorskip("pyspark", reason="pyspark is in the dev extra: pip install -e '.[dev]'")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java: apt-get install default-jre-headless (.ci/run does)", allow_module_level=True)


CHILD = os.environ.get("SEER_SPARK_CHILD") == "1"


def test_spark_runs_in_its_own_process():
    if CHILD:
        pytest.skip("this process is the child")
    test = f"{Path(__file__).resolve()}::test_spark_gives_the_numbers_of_seer_score"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        # No MLFLOW_* from the suite's process (an earlier test can leave e.g. MLFLOW_EXPERIMENT_ID set):
        # the child sets its own store.
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, "SEER_SPARK_CHILD": "1"},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout[-5000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("seer-score-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def series_file(path):
    """9 daily series (lookback + a few points each, own start and level) and one too short, in long format."""
    rng = np.random.default_rng(0)
    parts = []
    for k in range(10):
        n = P_L + 3 * k if k < 9 else P_L - 1
        start = datetime(2023, 1, 1) + timedelta(days=k)
        y = 100.0 * (k + 1) + 10 * np.sin(np.arange(n) * 2 * np.pi / 7) + rng.normal(size=n)
        parts.append(
            pl.DataFrame({"unique_id": [f"s{k}"] * n, "ds": [start + timedelta(days=i) for i in range(n)], "y": y})
        )
    frame = pl.concat(parts)
    frame.write_parquet(path)
    return frame


@pytest.mark.skipif(not CHILD, reason="run by test_spark_runs_in_its_own_process, in a process of its own")
def test_spark_gives_the_numbers_of_seer_score(spark, tmp_path, monkeypatch, capsys):
    from seer.score import score_spark

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    import mlflow

    from training.tracking import log_and_register

    # mlflow's tracking URI and active experiment are process globals that win over the env, and an earlier
    # test may have set them: this test's store and the default experiment, restored after the test so
    # that later tests' runs never land in this store.
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", uri)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    with mlflow.start_run():
        log_and_register(make_moirai_bundle(tmp_path / "bundle"), "nightly", np.zeros((P_L, 1)))
    frame = series_file(tmp_path / "series.parquet")
    out = tmp_path / "local.parquet"
    args = ["--input", str(tmp_path / "series.parquet"), "--output", str(out), "--quantiles", "0.1,0.9"]
    assert main(["score", "models:/nightly@champion", *args]) == 0
    assert "scored 9 of 10 series" in capsys.readouterr().out
    local = pl.read_parquet(out).sort("unique_id", "ds")

    sdf = spark.createDataFrame(frame.with_columns(pl.col("ds").dt.strftime("%Y-%m-%d")).to_pandas())
    answer = score_spark(sdf, "nightly@champion", tracking_uri=uri, batch=4, levels=[0.1, 0.9]).toPandas()
    got = pl.from_pandas(answer)
    errors = got.filter(pl.col("error").is_not_null())
    assert errors["unique_id"].to_list() == ["s9"] and f"lookback, {P_L}" in errors["error"][0]
    remote = got.filter(pl.col("error").is_null()).drop("error").sort("unique_id", "ds")
    assert remote.columns == local.columns == ["unique_id", "ds", "yhat", "q10", "q90"]
    assert remote.height == local.height == 9 * P_H
    assert remote["unique_id"].to_list() == local["unique_id"].to_list()
    assert remote["ds"].cast(pl.Datetime("us")).to_list() == local["ds"].to_list()
    for column in ("yhat", "q10", "q90"):
        np.testing.assert_allclose(remote[column].to_numpy(), local[column].to_numpy(), rtol=1e-5)
