"""Moirai-MoE sample-path decoding, KV cache vs full recompute → bench/results/decode.json.

Baseline: full recompute per patch step (uni2ts). `MoiraiMoE.forecast_samples(..., use_cache=False)` re-runs
the whole sequence (context + every patch decoded so far, for every sample path) at each patch step, as
uni2ts' Moirai-MoE does; `use_cache=True` (ours) encodes the context once, repeats its KV cache per sample
path and runs only the N new tokens per step. Same model, same input, same `torch.Generator` seed, so both
paths make the same draws and the sample paths must agree elementwise: the bench fails (after writing the
file) unless `rel_diff` = max |cached − recompute| / max(series scale, |cached value|) < 1e-4, where the
series scale is the variate's context standard deviation (the model's instance scale). The |value| term
is there for heavy-tailed draws far outside the scale: with random weights the Student-t component draws
values of hundreds of scales, whose fp32 rounding differences, fed back through later steps, grow with
the magnitude (one draw of 1193.57, 276 scales out, differed by 1.1e-3, a relative 1e-6). Beside it:
`rel_diff_vs_scale` = max |cached − recompute| / series scale, and `over_scale_tol`, the number of the
`compared` values whose difference exceeds 1e-4 · series scale.

Rows: {"model": "moirai_moe", "preset", "device", "dtype", "context", "horizon", "num_samples",
"n_variates", "cached_s", "recompute_s", "speedup" = recompute_s / cached_s, "max_abs_diff", ...}.
- Weights are randomly initialised (`torch.manual_seed`): decoding time does not depend on training, only
  on the shapes (the random routing spreads tokens over the experts roughly evenly). Random weights
  make wild paths, though: on an idle machine, at N = 7 and 100 paths, every path of the random `cpu()`
  model left the recomputed one at patch 40 (values saturated at the output clamps, where fp32 rounding
  picks the branch), while the same comparison with trained weights agrees over all 45 steps.
  `--weights BUNDLE` therefore adds rows (preset `trained`, the bundle's own lookback) for a trained
  model, e.g. the bundle `bench/zeroshot.py` saves.
- CPU: the `cpu()` preset (4 layers, d_model 128, 8 experts of width 256, top-2, patch 16), context = the
  preset's lookback (512), horizon 720 (45 patch steps), 100 sample paths, batch 1, fp32, N = 1 and N = 7,
  torch with 2 threads. CUDA adds the `small()` preset (the paper's Small) on the GPU.
- Wall clock after a short warm-up decode of both paths, with the process CPU time beside it. The cached
  decode runs up to 3 times (while the runs total < 30 s) and `cached_s` is the median run (of two, the
  faster); the recompute runs once. On 2 cores shared with other jobs the times swing: 2 torch threads
  wait on each other when a core is taken, which slows the cached path's many small ops more than
  recompute's large ones. `load_average` records the machine's load, `cached_runs_s` the spread.
- Time budget (`--budget-s`, default 480 s for the whole bench). Full recompute grows with the sequence
  (a step at patch index c runs (c + 1)·N·S tokens), so it can exceed the budget on CPU. Phase 1 runs every
  row's cached decode and times single recompute steps ("probes") at the first, middle and last sequence
  lengths; from them each row's full recompute time is predicted. Phase 2 runs the real
  `forecast_samples(use_cache=False)`, cheapest row first: in full when the prediction fits in the budget
  left (keeping for each later row the time of its shortest run), else for the first K patch steps that
  fit in an equal share of the budget left. Such a row is labelled `"recompute_extrapolated": true`:
  `recompute_s` = the measured time of the first K steps + the predicted time of the remaining steps, from
  a quadratic fit (a + b·T + c·T², T = tokens per path) of the per-step times measured in that run and the
  probes (re-timed right after the run, each length keeping its faster time; they span the whole range,
  so the fit interpolates); `recompute_measured_s` and `recompute_steps_measured` hold the measured part,
  and its `max_abs_diff` compares the first K·P horizon steps only. Every row carries the phase-1
  prediction (`recompute_predicted_s`): on fully measured rows, a check of the estimator.
- The headline `speedup` is the first row's (the `cpu()` preset with N = 1).

- `--tiny` (dry runs): the `tiny()` preset, N = 1 and 3, horizon 24, 4 sample paths; proves the script.
  `--out PATH` writes there instead of bench/results/decode.json.

    python bench/moirai_decode.py [--quick] [--tiny] [--budget-s 480] [--threads 2] [--device cpu|cuda]
                                  [--weights BUNDLE] [--out PATH]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write  # noqa: E402
from forecasters.moirai_moe.config import MoiraiMoEConfig  # noqa: E402
from forecasters.moirai_moe.model import MoiraiMoE, instance_scale, patchify, token_ids  # noqa: E402

BASELINE = "full recompute per patch step (uni2ts)"
CPU_THREADS = 2
CACHED_RUNS, CACHED_REPEAT_S = 3, 30.0  # cached decodes: up to 3 while they have taken < 30 s in all
TOLERANCE = 1e-4  # max |cached − recompute| / max(series scale, |cached value|)
PRESETS: dict[str, Callable[..., MoiraiMoEConfig]] = {
    "tiny": MoiraiMoEConfig.tiny,
    "cpu": MoiraiMoEConfig.cpu,
    "small": MoiraiMoEConfig.small,
}
Case = tuple[str, int]  # (preset, n_variates)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(fn: Callable[[], Any], dev: torch.device) -> tuple[Any, float, float]:
    """(result, wall seconds, process CPU seconds) of one call."""
    _sync(dev)
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    _sync(dev)
    return out, time.perf_counter() - t0, time.process_time() - c0


TRAINED: dict[str, Path] = {}  # "preset" name -> a trained bundle (`--weights`)


def model_for(preset: str, horizon: int, dev: torch.device, seed: int) -> MoiraiMoE:
    """The preset with random weights (seeded), max_horizon raised to `horizon` where needed, eval mode;
    a `TRAINED` name loads that bundle's config and weights instead."""
    if preset in TRAINED:
        from inference.bundle import load_bundle

        trained, _ = load_bundle(TRAINED[preset])
        model = MoiraiMoE(replace(trained.config, max_horizon=max(trained.config.max_horizon, horizon)))
        model.load_state_dict(trained.state_dict())
        return model.to(dev).eval()
    base = PRESETS[preset]()
    config = PRESETS[preset](max_horizon=max(base.max_horizon, horizon))
    torch.manual_seed(seed)
    return MoiraiMoE(config).to(dev).eval()


def series(context: int, n_variates: int, dev: torch.device, seed: int) -> torch.Tensor:
    """x [1, context, N]: per variate a daily-like and a weekly-like sine, a level and noise (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(context, dtype=torch.float64)[:, None]
    v = torch.arange(n_variates, dtype=torch.float64)[None, :]
    x = (
        (1.0 + v) * torch.sin(2 * math.pi * t / 24 + v)
        + 0.5 * torch.sin(2 * math.pi * t / 168)
        + 3.0 * v
        + 0.3 * torch.randn(context, n_variates, generator=gen, dtype=torch.float64)
    )
    return x[None].float().to(dev)


class Prober:
    """Times single full-recompute patch steps: one step at sequence length c patches (context C plus the
    decoded ones) runs what `MoiraiMoE._decode(use_cache=False)` runs per step — encode the whole sequence
    of c·N tokens for all B·S paths (concatenated from the context and the decoded patches, as there), the
    mixture head on the last N, a draw, the embedding of the drawn patch — on the real tokens (the
    context, then the cached run's sample paths)."""

    def __init__(self, model: MoiraiMoE, x: torch.Tensor, paths: torch.Tensor, gen: torch.Generator):
        self.model, self.gen, self.dev = model, gen, x.device
        p, n = model.config.patch_size, x.shape[2]
        b, s, h, _ = paths.shape
        with torch.no_grad():
            loc, scale = instance_scale(x, model.config.scale_eps)
            ctx, _, _ = patchify((x - loc) / scale, p)
            ctx_tokens = model.embed(ctx, ~torch.isnan(ctx)).repeat_interleave(s, 0)  # [B·S, C·N, D]
            y = ((paths - loc[:, None]) / scale[:, None]).reshape(b * s, h, n)
            y = torch.nn.functional.pad(y, (0, 0, 0, -h % p))
            hp = y.shape[1] // p
            fut = y.reshape(b * s, hp, p, n).transpose(2, 3).reshape(b * s, hp * n, p)
            fut_tokens = model.embed(fut, torch.ones_like(fut, dtype=torch.bool))
        self.ctx_tokens, self.fut_tokens = ctx_tokens, fut_tokens
        self.n, self.c0 = n, ctx.shape[1] // n
        self.variate_id, self.time_id = token_ids(self.c0 + hp, n, device=self.dev)

    @torch.no_grad()
    def step(self, patches: int) -> float:
        """Wall seconds of one recompute step over a sequence of `patches` patches per variate."""
        t = patches * self.n

        def run() -> None:
            tokens = torch.cat([self.ctx_tokens, self.fut_tokens[:, : t - self.ctx_tokens.shape[1]]], dim=1)
            h, _ = self.model.encode(tokens, self.variate_id[:t], self.time_id[:t])
            patch = self.model.head(h[:, -self.n :]).sample(self.gen)
            self.model.embed(patch, torch.ones_like(patch, dtype=torch.bool))

        return _timed(run, self.dev)[1]


@contextmanager
def step_times(model: MoiraiMoE, dev: torch.device) -> Iterator[list[tuple[int, float]]]:
    """Records (tokens per path, wall seconds) for each `encode` call after the first (the context's) while
    active: in the recompute path one call per patch step, the time since the previous call's return being
    that step (draw, embedding, encode). Syncs CUDA at each call, so only used for truncated runs."""
    record: list[tuple[int, float]] = []
    inner = model.encode
    last = [0.0]

    def encode(tokens: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        out = inner(tokens, *args, **kwargs)
        _sync(dev)
        now = time.perf_counter()
        if last[0]:
            record.append((tokens.shape[1], now - last[0]))
        last[0] = now
        return out

    model.encode = encode  # type: ignore[method-assign]
    try:
        yield record
    finally:
        del model.encode


def _fit(points: list[tuple[int, float]]) -> Callable[[float], float]:
    """Least-squares a + b·T + c·T² through (T, seconds); linear below 3 distinct T; floored at 0."""
    ts = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    deg = min(2, len(set(ts.tolist())) - 1)
    coef = np.polyfit(ts, ys, deg) if deg > 0 else np.array([ys.mean()])
    return lambda t: max(float(np.polyval(coef, t)), 0.0)


def _prepare(case: Case, dev: torch.device, context: int | None, horizon: int, num_samples: int, seed: int):
    """Phase 1 for one row: warm-up, the timed cached decode, recompute probes and the prediction."""
    preset, n = case
    model = model_for(preset, horizon, dev, seed)
    c = model.config
    context = context or c.lookback
    x = series(context, n, dev, seed)

    def gen() -> torch.Generator:
        return torch.Generator(device=dev).manual_seed(seed)

    warm = min(horizon, 2 * c.patch_size)
    for use_cache in (True, False):  # allocator, first-call dispatch, both code paths
        model.forecast_samples(x, horizon=warm, num_samples=num_samples, generator=gen(), use_cache=use_cache)
    runs: list[tuple[float, float]] = []  # (wall, CPU) seconds of each cached decode
    while len(runs) < CACHED_RUNS and (not runs or sum(r[0] for r in runs) < CACHED_REPEAT_S):
        cached, wall, cpu = _timed(
            lambda: model.forecast_samples(x, horizon=horizon, num_samples=num_samples, generator=gen()), dev
        )
        runs.append((wall, cpu))
    cached_s, cached_cpu = sorted(runs)[(len(runs) - 1) // 2]  # the median run (the lower of two)
    steps = math.ceil(horizon / c.patch_size)  # patch steps; steps − 1 of them encode
    c0 = math.ceil(context / c.patch_size)
    prober = Prober(model, x, cached, gen())
    lengths = sorted({c0 + 1, c0 + (steps + 1) // 2, c0 + steps - 1}) if steps > 1 else []
    probes = [(length * n, prober.step(length)) for length in lengths]
    # Context encode (B rows) and the final draw are small; the prediction counts the encode steps.
    fit = _fit(probes) if probes else (lambda t: 0.0)
    predicted = sum(fit((c0 + j + 1) * n) for j in range(steps - 1))
    return {
        "case": case,
        "model": model,
        "x": x,
        "gen": gen,
        "cached": cached,
        "cached_s": cached_s,
        "cached_cpu_s": cached_cpu,
        "cached_runs_s": [r[0] for r in runs],
        "steps": steps,
        "c0": c0,
        "context": context,
        "probes": probes,
        "prober": prober,
        "predicted": predicted,
    }


def _min_cost(prep: dict[str, Any]) -> float:
    """Predicted seconds of the shortest truncated recompute (2 patch steps) plus its re-probes."""
    if prep["steps"] <= 2:
        return prep["predicted"]
    first = _fit(prep["probes"])((prep["c0"] + 1) * prep["case"][1])
    return first + sum(t for _, t in prep["probes"])


def _recompute(prep: dict[str, Any], dev: torch.device, horizon: int, num_samples: int, allot: float):
    """Phase 2 for one row: the real recompute decode, in full or for the first K patch steps."""
    model, x, n, steps, c0 = prep["model"], prep["x"], prep["case"][1], prep["steps"], prep["c0"]
    p = model.config.patch_size
    if prep["predicted"] <= allot:
        k = steps
    else:  # the most patch steps whose predicted time fits beside the re-probes (at least 2: one encode)
        fit = _fit(prep["probes"])
        k, spent = 1, sum(t for _, t in prep["probes"])
        while k < steps:
            spent += fit((c0 + k) * n)
            if spent > allot:
                break
            k += 1
        k = max(2, min(k, steps - 1))
    h = min(horizon, k * p)

    def run() -> torch.Tensor:
        return model.forecast_samples(x, horizon=h, num_samples=num_samples, generator=prep["gen"](), use_cache=False)

    probes = prep["probes"]
    if k == steps:
        slow, seconds, cpu = _timed(run, dev)
        total, measured_steps = seconds, []
    else:
        with step_times(model, dev) as measured_steps:
            slow, seconds, cpu = _timed(run, dev)
        # The probes again, right after the run (the same load): each length keeps its faster time, so
        # load during phase 1 cannot inflate the predicted steps.
        probes = [(t, min(s, prep["prober"].step(t // n))) for t, s in probes]
        fit = _fit(probes + measured_steps)
        total = seconds + sum(fit((c0 + j + 1) * n) for j in range(k - 1, steps - 1))
    cached = prep["cached"][:, :, :h]
    diff = (cached - slow).abs()  # [B, S, h, N]
    _, scale = instance_scale(x, model.config.scale_eps)  # [B, 1, N]
    scale = scale[:, None]  # [B, 1, 1, N]
    return {
        "recompute_s": total,
        "recompute_measured_s": seconds,
        "recompute_cpu_s": cpu,
        "steps_measured": k,
        "probes": probes,
        "horizon_compared": h,
        "max_abs_diff": float(diff.max()),
        "rel_diff": float((diff / torch.maximum(scale, cached.abs())).max()),
        "rel_diff_vs_scale": float((diff / scale).max()),
        "over_scale_tol": int((diff > TOLERANCE * scale).sum()),
        "compared": diff.numel(),
        "finite": bool(torch.isfinite(slow).all() and torch.isfinite(prep["cached"]).all()),
    }


def run(
    cases: list[Case],
    device: str = "cpu",
    context: int | None = None,
    horizon: int = 720,
    num_samples: int = 100,
    budget_s: float = 480.0,
    seed: int = 0,
    threads: int = CPU_THREADS,
) -> list[dict[str, Any]]:
    """Benchmark rows (in `cases` order) for the given (preset, n_variates) cases; see the module docstring.
    `context` None = each preset's lookback; `threads`: torch CPU threads while it runs."""
    dev = torch.device(device)
    before = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        preps = [_prepare(case, dev, context, horizon, num_samples, seed) for case in cases]
        outcome: dict[int, dict[str, Any]] = {}
        order = sorted(range(len(preps)), key=lambda i: preps[i]["predicted"])
        for done, i in enumerate(order):  # cheapest first: as many rows in full as the budget allows
            remaining = budget_s - (time.perf_counter() - t0)
            later = [preps[j] for j in order[done + 1 :]]
            if preps[i]["predicted"] <= remaining - sum(_min_cost(q) for q in later):
                allot = math.inf  # in full, leaving the later rows at least their shortest run
            else:
                allot = remaining / (1 + len(later))
            outcome[i] = _recompute(preps[i], dev, horizon, num_samples, allot)
        return [_row(preps[i], outcome[i], dev, horizon, num_samples) for i in range(len(preps))]
    finally:
        torch.set_num_threads(before)


def _row(prep: dict[str, Any], out: dict[str, Any], dev: torch.device, horizon: int, num_samples: int):
    preset, n = prep["case"]
    model = prep["model"]
    extrapolated = out["steps_measured"] < prep["steps"]
    row: dict[str, Any] = {
        "model": "moirai_moe",
        "preset": preset,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "dtype": "fp32",
        "context": prep["context"],
        "horizon": horizon,
        "num_samples": num_samples,
        "n_variates": n,
        "batch": 1,
        "patch_steps": prep["steps"],
        "params": sum(p.numel() for p in model.parameters()),
        "cached_s": round(prep["cached_s"], 4),
        "recompute_s": round(out["recompute_s"], 4),
        "speedup": round(out["recompute_s"] / prep["cached_s"], 2),
        "max_abs_diff": float(f"{out['max_abs_diff']:.3e}"),
        "rel_diff": float(f"{out['rel_diff']:.3e}"),
        "agree": out["finite"] and out["rel_diff"] < TOLERANCE,
        "rel_diff_vs_scale": float(f"{out['rel_diff_vs_scale']:.3e}"),
        "over_scale_tol": out["over_scale_tol"],
        "compared": out["compared"],
        "horizon_compared": out["horizon_compared"],
        "cached_cpu_s": round(prep["cached_cpu_s"], 3),
        "cached_runs_s": [round(v, 4) for v in prep["cached_runs_s"]],
        "recompute_cpu_s": round(out["recompute_cpu_s"], 3),
        "recompute_extrapolated": extrapolated,
        "recompute_steps_measured": out["steps_measured"],
        "recompute_measured_s": round(out["recompute_measured_s"], 4),
        "recompute_predicted_s": round(prep["predicted"], 3),
        "probe_steps_s": [[t, round(s, 4)] for t, s in out["probes"]],
    }
    if extrapolated:
        row["recompute_cpu_s_note"] = f"CPU time of the measured {out['steps_measured']} patch steps only"
    return row


def payload(
    rows: list[dict[str, Any]],
    budget_s: float,
    seconds: float,
    load: dict[str, Any],
    quick: bool,
    threads: int = CPU_THREADS,
):
    """The decode.json body (bench.common.write adds commit, machine and command)."""
    head = rows[0]
    extrapolated = [r for r in rows if r["recompute_extrapolated"]]
    note = (
        "randomly initialised weights (seeded): decoding time depends on the shapes, not on training. "
        f"Wall clock after a warm-up; cached_s = median of up to {CACHED_RUNS} cached decodes (cached_runs_s), "
        f"recompute timed once; {threads} torch threads on CPU, on a machine shared with other jobs "
        "(see load_average; *_cpu_s is this process's CPU time). "
        "Sample paths compared elementwise: agree = rel_diff = max |cached - recompute| / max(series scale, "
        f"|cached value|) < {TOLERANCE:g} (series scale = the variate's context std; the |value| term covers "
        "heavy-tailed draws hundreds of scales out, whose fp32 differences grow with the magnitude); "
        "rel_diff_vs_scale = max |cached - recompute| / series scale, over_scale_tol = how many of the "
        "compared values differ by more than 1e-4 series scales."
    )
    if any(r["preset"] in TRAINED for r in rows):
        note += (
            " Rows with preset 'trained' use the weights of the bundle given by --weights (its config and lookback)"
            "; random weights saturate the output clamps on long horizons, where cached and recomputed paths can"
            " part (a chaotic, not a cache, difference): the trained rows are the agreement check that counts."
        )
    if extrapolated:
        names = ", ".join(
            f"{r['preset']} N={r['n_variates']} ({r['recompute_steps_measured']} of {r['patch_steps']} steps)"
            for r in extrapolated
        )
        note += (
            f" EXTRAPOLATED recompute_s for {names}: the budget ({budget_s:g} s) did not allow the full recompute, "
            "so the first K patch steps were measured (recompute_measured_s) and the rest predicted from a "
            "quadratic fit of per-step times (that run's steps + single-step probes up to the last length); "
            "max_abs_diff there covers the first K patches (horizon_compared)."
        )
    return {
        "speedup": head["speedup"],
        "main_row": f"results[0]: preset {head['preset']}, N={head['n_variates']}, {head['device']}",
        "results": rows,
        "baseline": BASELINE,
        "note": note,
        "budget_s": budget_s,
        "seconds": round(seconds, 1),
        "quick": quick,
        "threads": threads,
        "load_average": load,
    }


COLUMNS = [
    "preset",
    "device",
    "n_variates",
    "horizon",
    "num_samples",
    "cached_s",
    "recompute_s",
    "speedup",
    "max_abs_diff",
    "rel_diff",
    "rel_diff_vs_scale",
    "recompute_extrapolated",
    "recompute_steps_measured",
]


def table(rows: list[dict[str, Any]]) -> str:
    widths = [max(len(c), 8) for c in COLUMNS]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(COLUMNS, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="horizon 96, 20 sample paths")
    parser.add_argument("--tiny", action="store_true", help="tiny preset, horizon 24, 4 paths: proves the script")
    parser.add_argument("--out", type=Path, default=None, help="result file (default bench/results/decode.json)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="time budget for the whole bench")
    parser.add_argument("--threads", type=int, default=CPU_THREADS, help="torch CPU threads")
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="also time a trained bundle (e.g. bench/zeroshot.py's), rows with preset 'trained' (its own lookback)",
    )
    args = parser.parse_args()
    horizon, num_samples = (24, 4) if args.tiny else (96, 20) if args.quick else (720, 100)
    cases: list[Case] = [("tiny", 1), ("tiny", 3)] if args.tiny else [("cpu", 1), ("cpu", 7)]
    if args.weights is not None:
        TRAINED["trained"] = args.weights
        cases += [("trained", 1), ("trained", 7)]
    if torch.device(args.device).type == "cuda" and not args.tiny:
        cases += [("small", 1), ("small", 7)]

    t0, load_start = time.perf_counter(), os.getloadavg()
    rows = run(cases, args.device, None, horizon, num_samples, args.budget_s, threads=args.threads)
    load = {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in os.getloadavg()]}
    body = payload(rows, args.budget_s, time.perf_counter() - t0, load, args.quick, args.threads)
    body["tiny"] = args.tiny
    print(table(rows))
    print(body["note"])
    print(f"wrote {write('decode', body, args.out)}")
    bad = [r for r in rows if not r["agree"]]
    if bad:
        sys.exit(f"cached and recomputed sample paths disagree: {[(r['preset'], r['n_variates']) for r in bad]}")


if __name__ == "__main__":
    main()
