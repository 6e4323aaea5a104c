"""Ctrl-C in the middle of training, then `--resume`, finishes the run: with the real command and a real
SIGINT; and the resumed fit ends with exactly the weights the uninterrupted fit ends with (weights,
optimizer, LR schedule, early stopping and best weights, shuffle and dropout state all restored)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest
import torch

from training.checkpoint import saved_epoch

pytestmark = pytest.mark.slow
TINY = ["--set", "model.d_model=8", "--set", "model.d_ff=8", "--set", "model.n_heads=2", "--threads", "1"]


def weekly(path: Path, n: int = 200) -> Path:
    t = np.arange(n)
    cols = {
        f"s{i}": np.sin(2 * np.pi * t / 52 + i) + 0.1 * np.random.default_rng(i).standard_normal(n) for i in range(3)
    }
    pl.DataFrame({"week": [(date(2020, 1, 5) + timedelta(weeks=int(k))).isoformat() for k in t], **cols}).write_csv(
        path
    )
    return path


def seer(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seer", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_sigint_then_resume_finishes_the_run(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("SEER_CHECKPOINT_DIR", None)
    data = weekly(tmp_path / "w.csv")
    train = ["train", "itransformer", "--data", str(data), "--horizon", "4", "--name", "ck", *TINY]
    last = tmp_path / "checkpoints" / "ck" / "last"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seer", *train, "--set", "trainer.max_epochs=5000", "--set", "trainer.patience=5000"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not (last / "state.pt").exists() or saved_epoch(last) < 2:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint of two epochs within 240 s"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C, in the middle of a later epoch
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted: continue with: seer train itransformer --data" in err and err.rstrip().endswith("--resume")
    assert "expected duration of training: about" in out
    done = saved_epoch(last)
    run_id = json.loads((tmp_path / "checkpoints" / "ck" / "run.json").read_text())["run_id"]

    resumed = seer(
        [*train, "--set", f"trainer.max_epochs={done + 2}", "--set", "trainer.patience=5000", "--resume"], tmp_path, env
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed at epoch {done + 1} (1-based)" in resumed.stdout
    assert f"run {run_id} in" in resumed.stdout  # the same MLflow run goes on
    assert "registered models:/ck/1 (now @champion)" in resumed.stdout
    assert not (tmp_path / "checkpoints" / "ck").exists()  # registered: nothing left to resume
    run = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(run_id)
    assert run.info.status == "FINISHED" and "test_mse" in run.data.metrics
    assert f"epochs         {done + 2}.0000" in resumed.stdout


def test_a_resume_with_other_settings_or_nothing_to_resume_is_one_line(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    data = weekly(tmp_path / "w.csv")
    r = seer(
        ["train", "itransformer", "--data", str(data), "--horizon", "4", "--name", "none", "--resume"], tmp_path, env
    )
    assert (
        r.returncode == 2
        and "nothing to resume: no checkpoint in" in r.stderr
        and len(r.stderr.strip().splitlines()) == 1
    )


INTERRUPTED = """
import sys, lightning as L
sys.path.insert(0, {root!r})
from resume_case import recipe, train_checkpointed

class CtrlC(L.Callback):
    def on_train_batch_start(self, trainer, module, batch, i):
        if trainer.current_epoch == 2 and i == 1:
            raise KeyboardInterrupt  # what SIGINT raises in the main thread

train_checkpointed(recipe({data!r}), {ckpt!r}, {uri!r}, [CtrlC()], resume=False)
"""


def test_the_resumed_fit_ends_exactly_where_the_uninterrupted_one_does(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from resume_case import Grab, recipe, train_checkpointed

    data = str(weekly(tmp_path / "w.csv"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    whole = Grab()
    train_checkpointed(recipe(data), str(tmp_path / "a"), uri, [whole], resume=False)
    script = INTERRUPTED.format(root=str(Path(__file__).parent), data=data, ckpt=str(tmp_path / "b"), uri=uri)
    stopped = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True)
    assert stopped.returncode == 1 and "KeyboardInterrupt" in stopped.stderr, stopped.stderr[-2000:]
    assert saved_epoch(tmp_path / "b" / "last") == 2
    again = Grab()
    result = train_checkpointed(recipe(data), str(tmp_path / "b"), uri, [again], resume=True)
    assert result.resumed_from_epoch == 2 and result.metrics["epochs"] == 5
    assert whole.state.keys() == again.state.keys()
    for k in whole.state:
        assert torch.equal(whole.state[k], again.state[k]), k
