"""PDE surrogate speed against the solver, each at the accuracy it reaches -> bench/results/rollout.json.

For the same simulated time T = `--steps` model steps × the model step dt, wall time of
(a) the surrogates' rollouts (IFactFormer-m and the FNO baseline) on the coarse (stored) grid,
(b) the DNS: the data's spectral solver on the fine grid with the data's solver dt (`save_every` solver steps
    per model step), at the data's precision (float64) and in float32,
(c) the same solver run directly on the coarse grid (the under-resolved baseline),
all from one field (batch 1), timed `--repeats` times after a warm-up in this one command on one device with
`--threads` torch threads (the median is reported). Speed-up = DNS wall time / the method's.

Accuracy beside each speed: relative L2 (and energy-spectrum error) against the filtered DNS truth at steps
1/10/100, mean over the long test trajectory's start points (the one `bench/pde_accuracy.py` generates: the
pair's physics, seed + 1; starts every `--hop` snapshots with `--steps` steps of truth after them). The DNS
started from the full DNS state is the truth itself (error 0: it is how the data were made); the row
`dns-from-coarse` is the fine-grid solver started from the filtered (coarse) field, zero-padded in Fourier
space: what the DNS gives someone who holds only the coarse state, as the surrogates do.

    python bench/pde_rollout.py                                              # the registered kolmogorov pair
    python bench/pde_rollout.py --models DIR_A DIR_B --quick --out /tmp/r.json   # smoke sizes (the test)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write  # noqa: E402
from bench.pde_accuracy import (  # noqa: E402
    MODEL_NAMES,
    PAIR,
    Roll,
    generation,
    load,
    persistence,
    score,
    solver,
    surrogate,
    test_sets,
)

GOAL = "surrogate >= 50x faster than the fine-grid DNS for the same simulated time, on the same device"


def timed(roll: Roll, u0: np.ndarray, steps: int, repeats: int) -> dict[str, Any]:
    """Median (and every) wall time of `roll` over `steps` model steps from u0 [1, *grid, V], after one
    untimed warm-up step."""
    roll(u0, 1, [])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        roll(u0, steps, [steps])
        times.append(time.perf_counter() - t0)
    return {"wall_s": statistics.median(times), "wall_s_all": [round(t, 4) for t in times]}


def methods(loaded: list[tuple[torch.nn.Module, dict[str, Any]]], gen: Any) -> dict[str, tuple[Roll, dict]]:
    """{name: (roll, what it is)}: the surrogates, the DNS (two precisions), the DNS from the coarse state,
    the solver on the smallest grid that keeps every stored mode, the coarse solver, persistence (no work)."""
    fine, coarse = gen.grid, gen.stored_grid
    out: dict[str, tuple[Roll, dict]] = {}
    for model, meta in loaded:
        name = MODEL_NAMES.get(meta["model"], meta["model"])
        info = {
            "kind": "surrogate",
            "grid": coarse,
            "precision": "float32",
            "parameters": sum(p.numel() for p in model.parameters()),
            "step_dt": float(meta["transform"]["dt"]),
        }
        out[name] = (surrogate(model, meta), info)
    base = {"kind": "solver", "solver_dt": gen.dt, "solver_steps_per_model_step": gen.save_every}
    truth = "0 by construction from the full DNS state (the truth); timed from the coarse field zero-padded"
    out[f"dns-{fine}"] = (
        solver(gen, fine, upsample=True),
        {**base, "grid": fine, "precision": gen.precision, "error": truth},
    )
    if gen.precision != "float32":
        out[f"dns-{fine}-float32"] = (
            solver(gen, fine, "float32", upsample=True),
            {**base, "grid": fine, "precision": "float32", "error": truth},
        )
    padded = "the filtered field, zero-padded"
    out[f"dns-{fine}-from-coarse"] = (
        solver(gen, fine, upsample=True),
        {**base, "grid": fine, "precision": gen.precision, "start": padded},
    )
    carry = 3 * coarse // 2 + (3 * coarse // 2) % 2  # the smallest even grid whose 2/3 rule keeps every stored mode
    if coarse < carry < fine:
        note = f"{padded}: the smallest grid whose 2/3 rule keeps every stored mode"
        out[f"solver-{carry}"] = (
            solver(gen, carry, upsample=True),
            {**base, "grid": carry, "precision": gen.precision, "start": note},
        )
    note = "the filtered field (the under-resolved baseline; its 2/3 rule drops the top third of the stored modes)"
    out[f"solver-{coarse}"] = (solver(gen, coarse), {**base, "grid": coarse, "precision": gen.precision, "start": note})
    out["persistence"] = (persistence, {"kind": "reference: the initial field held fixed", "grid": coarse})
    return out


def measure(ms: dict[str, tuple[Roll, dict]], long: np.ndarray, args: argparse.Namespace) -> dict[str, dict]:
    steps = args.steps
    marks = sorted({1, min(10, steps), steps})
    u0 = long[:1]
    rows: dict[str, dict] = {}
    for name, (roll, info) in ms.items():
        t0 = time.perf_counter()
        row = dict(info)
        if name.startswith(f"dns-{args.fine}") and "start" not in info:  # the truth's own solver: error 0
            row.update({f"rel_l2_step{s}": 0.0 for s in marks} | {f"spectrum_error_step{s}": 0.0 for s in marks})
        else:
            acc = score(roll, long[: (args.starts - 1) * args.hop + steps + 1], marks, args.hop)
            row.update({k: v for k, v in acc.items() if k != "min_stable_steps"})
            row["stable_steps_min"] = acc["min_stable_steps"]
        if name != "persistence":
            row.update(timed(roll, u0, steps, args.repeats))
        rows[name] = row
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    ref = rows[f"dns-{args.fine}"]["wall_s"]
    for row in rows.values():
        if "wall_s" in row:
            row["speedup_vs_dns"] = ref / row["wall_s"]
    return rows


def table(rows: dict[str, dict], marks: Sequence[int]) -> str:
    head = "| method | grid | precision | wall s | speed-up vs DNS | " + " | ".join(f"rel-L2 @{s}" for s in marks)
    out = [head + f" | spec err @{marks[-1]} |", "|" + "---|" * (len(marks) + 6)]
    for name, r in rows.items():
        wall = f"{r['wall_s']:.3g}" if "wall_s" in r else "-"
        speed = f"{r['speedup_vs_dns']:.3g}x" if "speedup_vs_dns" in r else "-"
        errs = " | ".join("-" if r.get(f"rel_l2_step{s}") is None else f"{r[f'rel_l2_step{s}']:.3g}" for s in marks)
        spec = r.get(f"spectrum_error_step{marks[-1]}")
        spec_s = "-" if spec is None else f"{spec:.3g}"
        out.append(f"| {name} | {r['grid']}² | {r.get('precision', '-')} | {wall} | {speed} | {errs} | {spec_s} |")
    return "\n".join(out)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs=2, default=[f"models:/{r}/latest" for r in PAIR], help="IFactFormer-m, FNO")
    ap.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    ap.add_argument("--steps", type=int, default=100, help="model steps of the timed rollout (T = steps × dt)")
    ap.add_argument("--starts", type=int, default=10, help="start points of the accuracy figures")
    ap.add_argument("--hop", type=int, default=100, help="snapshots between start points")
    ap.add_argument("--horizon", type=int, default=1000, help="the long test trajectory's length (as pde_accuracy)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smoke sizes; never bench/results")
    ap.add_argument("--out", type=Path, help="write here instead of bench/results/rollout.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.starts, args.hop, args.horizon, args.repeats = 4, 2, 4, 12, 1
    if (args.starts - 1) * args.hop + args.steps > args.horizon:
        ap.error(f"--starts {args.starts} every --hop {args.hop} plus --steps {args.steps} exceed --horizon")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    loaded = [load(u, args.tracking_uri) for u in args.models]
    gen = generation(loaded[0][1])
    if any(generation(m) != gen for _, m in loaded):
        raise SystemExit("the two models were trained on different data; time a pair of one recipe pair")
    args.fine = gen.grid
    long = test_sets(loaded[0][1], args.horizon)["long"]
    rows = measure(methods(loaded, gen), long, args)
    marks = sorted({1, min(10, args.steps), args.steps})
    print(table(rows, marks))
    step_dt = gen.dt * gen.save_every
    payload = {
        "goal": GOAL,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": args.threads,
        "batch": 1,
        "repeats": args.repeats,
        "steps": args.steps,
        "model_step_dt": step_dt,
        "simulated_time": args.steps * step_dt,
        "solver_dt": gen.dt,
        "grid": {"fine": [gen.grid] * gen.ndim, "coarse": [gen.stored_grid] * gen.ndim},
        "dataset": f"{gen.kind} {gen.grid}^{gen.ndim} DNS -> {gen.stored_grid}^{gen.ndim}, long test trajectory seed "
        f"{gen.seed + 1}",
        "accuracy": f"rel-L2 vs the filtered DNS at steps {marks}, mean over {args.starts} starts {args.hop} apart",
        "models": list(args.models),
        "methods": rows,
    }
    out = args.out or (Path(tempfile.gettempdir()) / "pde_rollout_quick.json" if args.quick else None)
    print(f"wrote {write('rollout', payload, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
