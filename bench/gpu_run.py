"""One prepared GPU run: every kernel and GPU-only figure, in priority order, inside one time budget.

Steps, in order (each a subprocess of this interpreter, so a crash or a kill ends that step only):
  device      bench/gpu_device.py: versions, the GPU, its measured peak, what each step is missing
  tests       pytest -m gpu tests/core: bf16/fp16 parity of every kernel against its reference
  kernels     bench/kernels.py: attention (sweep + the shapes our models run) and norms vs PyTorch
  moe         bench/moe.py: the grouped-GEMM MoE vs the loop over experts
  probsparse  bench/probsparse.py: ProbSparse (reference and Triton) vs full attention, time and memory
  decode      bench/moirai_decode.py on CUDA: Moirai-MoE's KV-cached decoding vs full recompute
  accuracy    bench/accuracy.py: the missing Informer rows, most wanted first (`ACCURACY_ORDER`)
Budget: `--budget-s` bounds the whole run. At each step's start it gets its weight's share of what is
left (what earlier steps did not use passes on), at least `min_s`; a step still running at the end of
its share is killed (its process group: SIGTERM, then SIGKILL), what it wrote is kept and the next
starts. A step with less than its `min_s` left, or missing a package, is skipped with the reason.
Output, all in `--out` (flat, 8 files at most, so all of it comes back from a lent machine):
  summary.json (rewritten after every step: device, versions, each step's status, share, seconds, rows,
  goals, reasons), tests.json, kernels.json, moe.json, probsparse.json, decode.json, accuracy.json (each
  written by its step as it goes) and run.log (every step's output). Nothing goes to bench/results/:
  `--adopt DIR` copies a finished run's files there (GPU files beside the CPU ones, as <name>_gpu.json;
  accuracy rows merged by key) once they have been checked.
`--dry-run` walks the same steps with toy shapes (`--tiny`, the recipes' smoke configs) on whatever
device is here, in one to two minutes on 2 CPU cores (more when other jobs share them): the CI check of this script
(tests/bench/test_gpu_dry_run.py). Without --dry-run and without CUDA the run stops after the device step.

    python bench/gpu_run.py --out DIR [--budget-s 540] [--dry-run] [--steps NAME ...] [--full]
    python bench/gpu_run.py --adopt DIR
bench/gpu.sh wraps this with the install step (README, "GPU run").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GRACE_S = 5.0  # after SIGTERM, before SIGKILL
# The Informer rows the README still lacks, most wanted first: ETTh1 today (H=96 is measured), the
# original protocol's ETTh1 (H=24 is measured), then the other ETT sets today. 19 rows in all.
ACCURACY_ORDER: tuple[tuple[str, str, str, int], ...] = (
    *(("informer", "today", "ETTh1", h) for h in (192, 336, 720)),
    *(("informer", "original", "ETTh1", h) for h in (48, 168, 336, 720)),
    *(("informer", "today", d, h) for d in ("ETTh2", "ETTm1", "ETTm2") for h in (96, 192, 336, 720)),
)


@dataclass
class Context:
    """What the steps' command lines are built from."""

    out: Path
    tmp: Path
    dry_run: bool
    full: bool
    python: str = sys.executable
    cuda: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"


@dataclass(frozen=True)
class Step:
    name: str
    output: str  # the file in --out this step produces
    weight: float  # share of the budget left, against the weights of the steps still to run
    min_s: float  # least time worth starting with (a real run; a dry run needs DRY_MIN_S); weight 0: the share
    argv: Callable[[Context, float], list[str]]  # (context, share in seconds) -> command line
    env: Callable[[Context], dict[str, str]] = lambda ctx: {}


DRY_MIN_S = 5.0


def _bench(script: str, output: str, ctx: Context, *extra: str) -> list[str]:
    return [ctx.python, str(ROOT / "bench" / script), "--out", str(ctx.out / output), *extra]


def _size(ctx: Context) -> list[str]:
    """--tiny in a dry run, --quick in a real one unless --full."""
    return ["--tiny"] if ctx.dry_run else [] if ctx.full else ["--quick"]


def accuracy_rows(dry_run: bool) -> list[str]:
    """`ACCURACY_ORDER` minus the rows bench/results/accuracy.json already has (read, never written), as
    MODEL:PROTOCOL:DATASET:H; a dry run takes the first two (smoke configs)."""
    path = RESULTS / "accuracy.json"
    done = set()
    if path.exists():
        for r in json.loads(path.read_text()).get("results", []):
            done.add((r["model"], r.get("protocol", "today"), r["dataset"], int(r["horizon"])))
    rows = [spec for spec in ACCURACY_ORDER if spec not in done]
    return [":".join(map(str, spec)) for spec in (rows[:2] if dry_run else rows)]


def _accuracy_argv(ctx: Context, share: float) -> list[str]:
    rows = accuracy_rows(ctx.dry_run)
    margin = 10.0 if ctx.dry_run else 30.0  # imports, the data, the last write: the row must end before the kill
    extra = ["--smoke"] if ctx.dry_run else []
    return _bench(
        "accuracy.py", "accuracy.json", ctx, "--budget-s", f"{max(share - margin, 1.0):.0f}", *extra, "--rows", *rows
    )


def _accuracy_env(ctx: Context) -> dict[str, str]:
    """Accuracy rows train with our kernels only when their GPU tests passed in this run."""
    tests = next((s for s in ctx.summary.get("steps", []) if s["name"] == "tests"), None)
    if ctx.cuda and (tests is None or tests["status"] != "ok"):
        return {"SEER_KERNELS": "reference"}
    return {}


def _device_argv(ctx: Context, share: float) -> list[str]:
    tiny = ["--tiny"] if ctx.dry_run else []
    return [ctx.python, str(ROOT / "bench" / "gpu_device.py"), "--json", str(ctx.tmp / "device.json"), *tiny]


def _tests_argv(ctx: Context, share: float) -> list[str]:
    # tests/core only: its gpu tests are every kernel's low-precision parity, and it imports nothing but
    # torch, triton and pytest (the rest of the suite needs the service and tracking stack).
    # On a GPU with pytest-xdist, 4 workers: most of this step is Triton compiling each kernel variant.
    junit = str(ctx.tmp / "junit.xml")
    workers = ["-n", "4"] if ctx.cuda and importlib.util.find_spec("xdist") is not None else []
    argv = [ctx.python, "-m", "pytest", "tests/core", "-m", "gpu", "-q", "-p", "no:cacheprovider", *workers]
    return [*argv, "--junitxml", junit]


def _kernels_argv(ctx: Context, share: float) -> list[str]:
    return _bench("kernels.py", "kernels.json", ctx, "--device", ctx.device, *_size(ctx))


def _moe_argv(ctx: Context, share: float) -> list[str]:
    return _bench("moe.py", "moe.json", ctx, "--device", ctx.device, *_size(ctx))


def _probsparse_argv(ctx: Context, share: float) -> list[str]:
    # This device only (the CPU rows are on file); on CUDA the whole range, to L=16384, takes seconds.
    return _bench("probsparse.py", "probsparse.json", ctx, "--device", ctx.device, *(["--tiny"] if ctx.dry_run else []))


def _decode_argv(ctx: Context, share: float) -> list[str]:
    # Its own budget covers the recompute phase, which it predicts and truncates; the rest is the margin.
    tiny = ["--tiny"] if ctx.dry_run else []
    return _bench(
        "moirai_decode.py", "decode.json", ctx, "--device", ctx.device, "--budget-s", f"{0.6 * share:.0f}", *tiny
    )


STEPS: tuple[Step, ...] = (
    Step("device", "summary.json", 0.0, 60.0, _device_argv),
    Step("tests", "tests.json", 0.2, 60.0, _tests_argv),
    Step("kernels", "kernels.json", 0.22, 30.0, _kernels_argv),
    Step("moe", "moe.json", 0.08, 20.0, _moe_argv),
    Step("probsparse", "probsparse.json", 0.08, 20.0, _probsparse_argv),
    Step("decode", "decode.json", 0.12, 30.0, _decode_argv),
    Step("accuracy", "accuracy.json", 0.3, 60.0, _accuracy_argv, _accuracy_env),
)
STEP_NAMES = tuple(s.name for s in STEPS)


def _kill(proc: subprocess.Popen) -> None:
    """End the step's whole process group: SIGTERM, then SIGKILL after GRACE_S."""
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_step(step: Step, ctx: Context, share: float, log: TextIO) -> dict[str, Any]:
    """Run one step for at most `share` seconds, its output streamed to the log and to stdout."""
    argv = step.argv(ctx, share)
    extra_env = step.env(ctx)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra_env}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    _emit(log, f"\n=== {step.name}: share {share:.0f} s: {' '.join(argv)}\n")
    t0 = time.monotonic()
    record: dict[str, Any] = {"name": step.name, "share_s": round(share, 1), "command": argv, "env": extra_env}
    try:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group, so a kill takes its children too
        )
    except OSError as exc:
        return {**record, "status": "error", "reason": f"could not start: {exc}", "seconds": 0.0}
    reader = threading.Thread(target=_pump, args=(proc.stdout, log), daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=share)
        status = "ok" if rc == 0 else "failed"
    except subprocess.TimeoutExpired:
        _kill(proc)
        rc, status = proc.returncode, "timeout"
        record["reason"] = f"still running after its share of {share:.0f} s: killed; what it wrote is kept"
    reader.join(timeout=10)
    return {**record, "status": status, "rc": rc, "seconds": round(time.monotonic() - t0, 1)}


def _pump(stream: TextIO | None, log: TextIO) -> None:
    for line in stream or []:
        _emit(log, line)


def _emit(log: TextIO, text: str) -> None:
    log.write(text)
    log.flush()
    sys.stdout.write(text)
    sys.stdout.flush()


def tests_json(junit: Path, out: Path) -> dict[str, Any]:
    """tests.json from pytest's JUnit XML (our own file, just written): counts and every non-pass."""
    if not junit.exists():
        body: dict[str, Any] = {"complete": False, "note": "pytest wrote no report (cut off or failed to start)"}
    else:
        counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        cases = []
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for tag in ("failure", "error", "skipped"):
                child = case.find(tag)
                if child is not None:
                    outcome, message = tag.replace("failure", "failed"), (child.get("message") or "")[:500]
            counts[outcome] += 1
            name = f"{case.get('classname')}::{case.get('name')}"
            cases.append(
                {"test": name, "outcome": outcome, "seconds": float(case.get("time") or 0), "message": message}
            )
        body = {"complete": True, **counts, "tests": cases}
    body["command"] = "pytest tests/core -m gpu"
    out.write_text(json.dumps(body, indent=2) + "\n")
    return body


def inspect(step: Step, ctx: Context) -> dict[str, Any]:
    """What the step left in --out: the file, its row count, whether it finished, and any goals."""
    path = ctx.out / step.output
    if step.name == "device":  # its report goes into summary.json, written right after this
        return {"file": step.output, "produced": bool(ctx.summary.get("device"))}
    info: dict[str, Any] = {"file": step.output, "produced": path.exists()}
    if not path.exists():
        return info
    try:
        body = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return {**info, "note": f"unreadable: {exc}"}
    if step.name == "tests":
        return {**info, **{k: body.get(k) for k in ("complete", "passed", "failed", "error", "skipped")}}
    rows = body.get("results", [])
    info.update(rows=len(rows), complete=body.get("complete", True))
    for key in ("goals", "skipped"):
        if body.get(key):
            info[key] = body[key]
    return info


def _precheck(step: Step, ctx: Context) -> str | None:
    """Why `step` cannot run here (None: it can)."""
    if step.name == "device":
        return None
    device = ctx.summary.get("device", {})
    if not device:
        return "the device step gave no report"
    if not ctx.dry_run and not ctx.cuda:
        return "no CUDA device: a real run needs one (--dry-run walks the steps on CPU)"
    missing = device.get("missing", {}).get(step.name)
    if missing:
        return f"missing packages {', '.join(missing)} (bench/gpu.sh prepare packs them; README, GPU run)"
    if step.name == "accuracy" and not accuracy_rows(ctx.dry_run):
        return "every Informer row of ACCURACY_ORDER is already in bench/results/accuracy.json"
    return None


def write_summary(ctx: Context) -> None:
    (ctx.out / "summary.json").write_text(json.dumps(ctx.summary, indent=2) + "\n")


def run(ctx: Context, budget_s: float, selected: set[str], log: TextIO) -> dict[str, Any]:
    """Every step in order within `budget_s`; the summary (also in --out/summary.json after each step)."""
    from bench.common import commit

    t_start = time.monotonic()
    ctx.summary = {
        "dry_run": ctx.dry_run,
        "budget_s": budget_s,
        "commit": commit(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "steps": [],
    }
    todo = [s for s in STEPS if s.name == "device" or s.name in selected]
    for i, step in enumerate(todo):
        left = budget_s - (time.monotonic() - t_start)
        min_s = DRY_MIN_S if ctx.dry_run else step.min_s
        reason = _precheck(step, ctx)
        if reason is None and left < (min_s if step.weight else 1.0):  # weight 0 (device): whatever is left
            reason = f"budget: {left:.0f} s left, the step needs at least {min_s:.0f} s"
        if reason is not None:
            _emit(log, f"\n=== {step.name}: skipped: {reason}\n")
            ctx.summary["steps"].append({"name": step.name, "status": "skipped", "reason": reason})
            write_summary(ctx)
            continue
        weights = sum(s.weight for s in todo[i:])
        share = left * step.weight / weights if weights else left
        share = min(max(share, min_s) if step.weight else step.min_s, left)  # weight 0 (device): a fixed cap
        record = run_step(step, ctx, share, log)
        if step.name == "device":
            _read_device(ctx)
        if step.name == "tests":
            tests_json(ctx.tmp / "junit.xml", ctx.out / "tests.json")
        for part in ctx.out.glob("*.part"):  # a write cut by the kill (bench.common.write): the file before it stands
            part.unlink()
        record.update(inspect(step, ctx))
        ctx.summary["steps"].append(record)
        write_summary(ctx)
    ctx.summary["skipped_by_choice"] = [s.name for s in STEPS if s not in todo]
    ctx.summary["seconds"] = round(time.monotonic() - t_start, 1)
    write_summary(ctx)
    return ctx.summary


def _read_device(ctx: Context) -> None:
    path = ctx.tmp / "device.json"
    ctx.summary["device"] = json.loads(path.read_text()) if path.exists() else {}
    ctx.cuda = bool(ctx.summary["device"].get("cuda_available"))


def _note(s: dict[str, Any], summary: dict[str, Any]) -> str:
    """The last column of a step's line in the table."""
    reason = s.get("reason", "")
    if s["name"] == "device":
        dev = summary.get("device", {})
        triton = dev.get("packages", {}).get("triton")
        return f"{dev.get('name', 'no CUDA device')}; torch {dev.get('torch')}, triton {triton}"
    if s["name"] == "tests" and s.get("complete"):
        counts = ", ".join(f"{s.get(k)} {k}" for k in ("passed", "failed", "error", "skipped"))
        return counts + (f"; {reason}" if reason else "")
    if "rows" in s:
        note = f"{s['rows']} rows" + ("" if s.get("complete") else " (incomplete)")
        note += f", {len(s['skipped'])} skipped" if s.get("skipped") else ""
        return note + (f"; {reason}" if reason else "")
    return reason


def table(summary: dict[str, Any]) -> str:
    """The summary as a table: one line per step, then the goals."""
    lines = [f"{'step':11s} {'status':8s} {'seconds':>8s} {'share':>6s}  {'file':16s} note"]
    for s in summary["steps"]:
        seconds, share, note = s.get("seconds", ""), s.get("share_s", ""), _note(s, summary)
        lines.append(f"{s['name']:11s} {s['status']:8s} {seconds!s:>8s} {share!s:>6s}  {s.get('file', ''):16s} {note}")
    for s in summary["steps"]:
        for g in s.get("goals", []):
            verdict = "met" if g["met"] else "MISSED"
            lines.append(f"goal: {g['goal']} ({g['pass']}): worst {g['worst']}x, target {g['target']}x: {verdict}")
    return "\n".join(lines)


ADOPT = {
    "kernels.json": "kernels_gpu.json",
    "moe.json": "moe_gpu.json",
    "probsparse.json": "probsparse_gpu.json",
    "decode.json": "decode_gpu.json",
    "tests.json": "gpu_tests.json",
    "summary.json": "gpu_run.json",
}


def adopt(src: Path) -> list[Path]:
    """Copy a real run's files into bench/results (GPU files as <name>_gpu.json beside the CPU ones) and merge
    its accuracy rows by key; refuses a dry run's."""
    summary = json.loads((src / "summary.json").read_text())
    if summary.get("dry_run"):
        raise SystemExit(f"{src} holds a dry run: its figures are not results")
    written = []
    for name, target in ADOPT.items():
        if (src / name).exists():
            shutil.copyfile(src / name, RESULTS / target)
            written.append(RESULTS / target)
    if (src / "accuracy.json").exists():
        from bench.accuracy import merge_row

        for row in json.loads((src / "accuracy.json").read_text()).get("results", []):
            if not row.get("smoke"):
                written.append(merge_row(row)[0])
    return sorted(set(written))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="results folder (created; never bench/results)")
    parser.add_argument("--budget-s", type=float, default=None, help="the whole run's seconds (default 540; dry 600)")
    parser.add_argument("--dry-run", action="store_true", help="toy shapes on this device: proves every step")
    parser.add_argument("--steps", nargs="+", choices=STEP_NAMES[1:], default=list(STEP_NAMES[1:]))
    parser.add_argument("--full", action="store_true", help="the benches' full shape lists instead of --quick")
    parser.add_argument("--adopt", type=Path, default=None, help="copy a finished run's files into bench/results")
    args = parser.parse_args()
    if args.adopt is not None:
        for path in adopt(args.adopt):
            print(f"wrote {path}")
        return 0
    if args.out is None:
        parser.error("--out is required")
    out = args.out.resolve()
    if out == RESULTS or RESULTS in out.parents:
        parser.error("--out must not be bench/results (a run's files go there only through --adopt)")
    out.mkdir(parents=True, exist_ok=True)
    budget = args.budget_s if args.budget_s is not None else 600.0 if args.dry_run else 540.0
    with tempfile.TemporaryDirectory(prefix="seer-gpu-run-") as tmp, open(out / "run.log", "w") as log:
        ctx = Context(out=out, tmp=Path(tmp), dry_run=args.dry_run, full=args.full)
        summary = run(ctx, budget, set(args.steps), log)
        _emit(log, "\n" + table(summary) + "\n")
    if not args.dry_run and not ctx.cuda:
        return 2
    return 1 if any(s["status"] in ("failed", "timeout", "error") for s in summary["steps"]) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
