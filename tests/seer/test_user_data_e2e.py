"""Your own data in one command, end to end: a weekly CSV the test writes (7 columns with their own names,
a `week` column, a text column) and a long-format Parquet of several weekly series → `seer train MODEL
--data FILE --horizon H --name NAME` → registered under that name → `seer serve` (a real HTTP server,
by alias and by version number) → forecasts whose timestamps step weekly."""

import os
import subprocess
import sys
from datetime import datetime, timedelta

import httpx
import pytest
from user_files import STORES, long_parquet, weekly_csv

from seer.cli import main
from seer.procs import free_port, wait_http

pytestmark = pytest.mark.slow

TINY = ["--set", "trainer.max_epochs=1", "--set", "trainer.limit_train_batches=2", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own-data")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "SEER_CHECKPOINT_DIR": str(tmp / "ckpt")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    cwd = os.getcwd()
    os.chdir(tmp)
    outs = []
    try:
        csv, parquet = weekly_csv(tmp / "sales.csv"), long_parquet(tmp / "skus.parquet")
        small = ["--set", "model.d_model=16", "--set", "model.d_ff=16", "--set", "model.n_heads=2"]
        for argv in (
            ["train", "itransformer", "--data", str(csv), "--horizon", "12", "--name", "weekly-sales", *small, *TINY],
            ["train", "informer", "--data", str(parquet), "--horizon", "6", "--name", "sku-weekly", *small, *TINY],
        ):
            out_file = tmp / f"{argv[1]}.out"
            with open(out_file, "w") as f:
                code = subprocess.run(
                    [sys.executable, "-m", "seer", *argv], stdout=f, stderr=subprocess.STDOUT
                ).returncode
            outs.append(out_file.read_text())
            assert code == 0, outs[-1][-3000:]
    finally:
        os.chdir(cwd)
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return tmp, env, outs


def test_the_output_states_frequency_split_and_registered_name(trained):
    _, _, (wide, long) = trained
    assert "(wide): 260 rows × 7 series [north, south, east" in wide and "left out: currency" in wide
    assert "frequency: weekly (inferred from the timestamps; calendar features 'w': 2)" in wide
    assert "split 70/10/20 % by time, lookback 80, horizon 12: train rows 0-181 (2019-01-06" in wide
    assert "registered models:/weekly-sales/1 (now @champion)" in wide
    assert "(long (unique_id, ds, y)): 200 rows × 3 series [sku-1, sku-2, sku-3]" in long
    assert "registered models:/sku-weekly/1 (now @champion)" in long


def test_both_models_are_served_and_forecast_at_weekly_steps(trained):
    tmp, env, _ = trained
    port = free_port()
    log = tmp / "serve.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seer",
                "serve",
                "--models",
                "weekly-sales@champion,sku-weekly/1",
                "--port",
                str(port),
            ],
            cwd=tmp,
            env={**os.environ, **env},
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc, log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for name, variates, horizon in (
                ("weekly-sales", list(STORES), 12),
                ("sku-weekly", ["sku-1", "sku-2", "sku-3"], 6),
            ):
                info = client.get(f"/v1/models/{name}").json()
                assert (info["variates"], info["horizon"], info["freq"], info["step_seconds"]) == (
                    variates,
                    horizon,
                    "w",
                    7 * 86_400,
                )
                ex = info["example_input"]
                r = client.post(
                    f"/v1/models/{name}/forecast", json={"history": ex["history"], "timestamps": ex["timestamps"]}
                )
                assert r.status_code == 200, r.text
                body = r.json()
                stamps = [datetime.fromisoformat(t) for t in body["timestamps"]]
                assert len(body["forecast"]) == horizon and len(body["forecast"][0]) == len(variates)
                assert stamps[0] - datetime.fromisoformat(ex["timestamps"][-1]) == timedelta(weeks=1)
                assert all(b - a == timedelta(weeks=1) for a, b in zip(stamps, stamps[1:], strict=False))
            assert str(client.get("/v1/models/sku-weekly").json()["version"]) == "1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_errors_are_one_line_that_says_what_exists(trained, capsys, monkeypatch):
    tmp, env, _ = trained
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cases = [
        (["serve", "--models", "weekly-sales@prod"], "weekly-sales has no alias @prod; weekly-sales has versions 1"),
        (
            ["serve", "--models", "weekly-sales/7"],
            "weekly-sales has no version 7; weekly-sales has versions 1 (@champion → 1)",
        ),
        (["serve", "--models", "nosuch@champion"], "no registered model 'nosuch' in sqlite:///"),
        (["serve", "--models", "weekly sales@champion"], "bad model ref 'weekly sales@champion'"),
        (["evaluate", "itransformer-etth1"], "no registered model 'itransformer-etth1'"),
        (["evaluate", "itransformer-etth1", "--model", "models:/weekly-sales@prod"], "weekly-sales has no alias @prod"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expected in err, err
        assert len(err.splitlines()) == 1, err
