"""bench/gpu.sh --dry-run walks every step of the GPU run and writes only to its --out folder; the runner's
budget kills an overrunning step (its whole process group), keeps what it wrote and moves on; steps that
cannot run are skipped with the reason."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import gpu_run  # noqa: E402
from bench.accuracy import ANCHORS  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# What the device tool brings back from a lent machine: 8 files at most, names of these characters.
MAX_FILES, NAME = 8, re.compile(r"^[A-Za-z0-9._-]+$")


def _written_by(marker: str, folder: Path) -> list[str]:
    """Files under `folder` holding `marker` (every bench file records its commit, which the run sets to it).
    Checked by content, not by time: other processes may write bench/results while this test runs."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and marker.encode() in p.read_bytes()]


def _env(commit: str = "test") -> dict[str, str]:
    env = {**os.environ, "PYTHON": sys.executable, "SEER_COMMIT": commit}
    env.pop("TRITON_INTERPRET", None)  # as in CI: each step sets up its own device path
    return env


def test_dry_run_walks_every_step_and_writes_only_to_out(tmp_path):
    out = tmp_path / "gpu"
    marker = f"dry-run-{os.getpid()}-{time.time_ns()}"
    assert not _written_by(marker, RESULTS)
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh"), "--dry-run", "--out", str(out), "--budget-s", "900"],
        cwd=ROOT,
        env=_env(marker),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert not _written_by(marker, RESULTS), "a dry run wrote into bench/results"

    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True and summary["commit"] == marker
    assert all(marker in (out / f).read_text() for f in ("kernels.json", "moe.json", "accuracy.json"))
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == list(gpu_run.STEP_NAMES)
    for name, step in steps.items():
        assert step["status"] == "ok", (name, step)
        assert step["produced"], (name, step)
        assert step["seconds"] <= step["share_s"] + 1.0
    assert summary["device"]["torch"] == torch.__version__  # the device step ran this interpreter

    # Every file is flat, plainly named, and there are few enough of them to come back from a lent machine.
    files = sorted(p.name for p in out.iterdir())
    assert all((out / f).is_file() and NAME.match(f) for f in files) and len(files) <= MAX_FILES, files
    assert set(files) == {s.output for s in gpu_run.STEPS} | {"run.log"}

    tests = json.loads((out / "tests.json").read_text())
    assert tests["complete"] and tests["failed"] == tests["error"] == 0
    assert tests["passed"] + tests["skipped"] >= 20  # the gpu tier: every kernel's bf16/fp16 parity

    kernels = json.loads((out / "kernels.json").read_text())
    assert kernels["tiny"] and kernels["complete"]
    attention = [r for r in kernels["results"] if r["op"] == "attention"]
    shapes = {r["shape"] for r in attention}
    assert {"sweep", "itransformer N=7", "informer cross", "moirai-moe bias"} <= shapes
    moirai = next(r for r in attention if r["shape"] == "moirai-moe bias")
    assert moirai["bias"] and moirai["bias_kind"] == "moirai" and moirai["bias_shape"][0] == 1
    for r in kernels["results"]:
        assert r["peak_fraction"] is not None and r["ratio"] > 0, r
        assert (r.get("tflops") or r.get("gbps") or 0) > 0, r  # 4 significant digits: never rounded to 0
    assert kernels["peak"]["attention"]["matmul_tflops"] > 0

    for name in ("moe", "probsparse", "decode"):
        body = json.loads((out / f"{name}.json").read_text())
        assert body["results"] and body.get("tiny"), name
    assert all("tflops" in r and "peak_fraction" in r for r in json.loads((out / "moe.json").read_text())["results"])

    accuracy = json.loads((out / "accuracy.json").read_text())["results"]
    assert len(accuracy) == 2 and all(r["smoke"] and r["device"] == "cpu" and r["kernels"] for r in accuracy)
    assert "=== accuracy" in (out / "run.log").read_text()
    with pytest.raises(SystemExit, match="dry run"):  # toy figures never reach bench/results
        gpu_run.adopt(out)


def _fake_steps(tmp_path: Path, cuda: bool) -> tuple[gpu_run.Step, ...]:
    """A device step that reports `cuda`, a step that overruns (with a child process), a quick one, and one
    that needs more time than any budget here."""
    report = json.dumps({"cuda_available": cuda, "missing": {}})
    child_pid = tmp_path / "child.pid"
    slow = (
        "import subprocess, sys, time, pathlib; "
        f"child = subprocess.Popen(['sleep', '60']); pathlib.Path({str(child_pid)!r}).write_text(str(child.pid)); "
        f"pathlib.Path({str(tmp_path / 'out' / 'slow.json')!r}).write_text('{{}}'); "
        "print('partial output', flush=True); time.sleep(60)"
    )
    quick = f"import pathlib; pathlib.Path({str(tmp_path / 'out' / 'quick.json')!r}).write_text('{{}}')"

    def device(ctx, share):
        return [
            sys.executable,
            "-c",
            f"import pathlib; pathlib.Path({str(ctx.tmp / 'device.json')!r}).write_text({report!r})",
        ]

    return (
        gpu_run.Step("device", "summary.json", 0.0, 30.0, device),
        gpu_run.Step("slow", "slow.json", 0.5, 0.5, lambda ctx, share: [sys.executable, "-c", slow]),
        gpu_run.Step("quick", "quick.json", 0.5, 0.5, lambda ctx, share: [sys.executable, "-c", quick]),
        gpu_run.Step("big", "big.json", 0.1, 1e6, lambda ctx, share: [sys.executable, "-c", "pass"]),
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_overrunning_step_is_killed_its_output_kept_and_the_next_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_run, "STEPS", _fake_steps(tmp_path, cuda=True))
    out = tmp_path / "out"
    out.mkdir()
    ctx = gpu_run.Context(out=out, tmp=tmp_path, dry_run=False, full=False)
    t0 = time.monotonic()
    with open(out / "run.log", "w") as log:
        summary = gpu_run.run(ctx, 6.0, {"slow", "quick", "big"}, log)
    assert time.monotonic() - t0 < 20
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["device"]["status"] == "ok" and ctx.cuda
    assert steps["slow"]["status"] == "timeout" and steps["slow"]["produced"]
    assert steps["slow"]["share_s"] <= 6.0 and "killed" in steps["slow"]["reason"]
    assert steps["quick"]["status"] == "ok" and steps["quick"]["produced"]
    assert steps["big"]["status"] == "skipped" and steps["big"]["reason"].startswith("budget")
    assert "partial output" in (out / "run.log").read_text()
    child = int((tmp_path / "child.pid").read_text())
    for _ in range(50):  # the kill reached the step's child too (its process group)
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)
    assert json.loads((out / "summary.json").read_text())["steps"] == summary["steps"]
    assert "timeout" in gpu_run.table(summary)


def test_a_real_run_without_cuda_skips_every_step_after_the_device_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_run, "STEPS", _fake_steps(tmp_path, cuda=False))
    out = tmp_path / "out"
    out.mkdir()
    ctx = gpu_run.Context(out=out, tmp=tmp_path, dry_run=False, full=False)
    with open(out / "run.log", "w") as log:
        summary = gpu_run.run(ctx, 60.0, {"slow", "quick"}, log)
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["device"]["status"] == "ok"
    assert all(steps[n]["status"] == "skipped" and "no CUDA device" in steps[n]["reason"] for n in ("slow", "quick"))
    assert summary["skipped_by_choice"] == ["big"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_real_command_without_cuda_exits_2_after_the_device_step(tmp_path):
    out = tmp_path / "gpu"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_run.py"), "--out", str(out), "--steps", "kernels"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout[-3000:]
    steps = json.loads((out / "summary.json").read_text())["steps"]
    assert [s["name"] for s in steps] == ["device", "kernels"] and "no CUDA" in steps[1]["reason"]


def test_out_inside_bench_results_is_refused(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_run.py"), "--dry-run", "--out", str(RESULTS / "x")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "must not be bench/results" in proc.stderr
    assert not (RESULTS / "x").exists()


def test_accuracy_order_is_the_anchored_informer_rows_not_yet_measured():
    assert len(gpu_run.ACCURACY_ORDER) == len(set(gpu_run.ACCURACY_ORDER)) == 19
    for model, protocol, dataset, horizon in gpu_run.ACCURACY_ORDER:
        assert (dataset, horizon) in ANCHORS[(model, protocol)][0]
    assert gpu_run.ACCURACY_ORDER[0] == ("informer", "today", "ETTh1", 192)
    rows = gpu_run.accuracy_rows(dry_run=False)
    measured = {
        (r["model"], r.get("protocol", "today"), r["dataset"], int(r["horizon"]))
        for r in json.loads((RESULTS / "accuracy.json").read_text())["results"]
    }
    expected = [":".join(map(str, s)) for s in gpu_run.ACCURACY_ORDER if s not in measured]
    assert rows == expected
    assert gpu_run.accuracy_rows(dry_run=True) == expected[:2]


def test_accuracy_budget_skips_rows_it_cannot_fit_and_records_them(tmp_path):
    out = tmp_path / "accuracy.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "accuracy.py"), "--smoke", "--budget-s", "0", "--out", str(out)]
        + ["--rows", "informer:today:ETTh1:192", "informer:original:ETTh1:48"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    body = json.loads(out.read_text())
    assert body["results"] == []
    assert [(s["protocol"], s["horizon"]) for s in body["skipped"]] == [("today", 192), ("original", 48)]
    assert all(s["reason"].startswith("budget") for s in body["skipped"])
