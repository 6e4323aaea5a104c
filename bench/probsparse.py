"""ProbSparse vs full attention: peak memory and time as L grows → bench/results/probsparse.json.

Methods, B=1, H=8, D=64, fp32, non-causal, L = Lq = Lk ∈ {512, 1k, 2k, 4k, 8k, 16k} (--quick: L <= 2048):
- `probsparse`: `probsparse_attention_reference` (the PyTorch spec), factor 5: S = u = 5·⌈ln L⌉ sampled
  keys per query and selected queries per head. Its memory is the [B, H, L, S, D] gather of sampled keys
  in `query_sparsity` plus O(L·D) rows, so ≈ L log L.
- `full`: `core.ops.attention.reference.attention_reference`, which materialises the [B, H, L, L] scores
  (≈ L² memory).
- `sdpa`: `torch.nn.functional.scaled_dot_product_attention`, a second full-attention baseline; on CPU it
  runs PyTorch's flash kernel, whose memory is O(L) (it never stores the scores) but whose time is still
  ≈ L².
- `probsparse_triton` (CUDA only): the public op with `impl="triton"` (`core/ops/probsparse/triton.py`).
Each method runs forward only (`fwd`) and forward + backward to q, k, v (`fwd+bwd`). All ProbSparse calls
use one fixed key sample `index` per L, so the reference and the kernel compute the same thing.

Peak memory ("peak extra bytes"): the high-water mark of bytes allocated during the call above what was
live before it (inputs and the upstream gradient are allocated outside; outputs and gradients count).
- CPU: tracemalloc does not see torch's allocator and RSS sampling misses short peaks (and glibc keeps
  freed pages), so the call runs once under `torch.profiler` with `profile_memory=True`; every allocation
  and free of torch's CPU allocator is then an event of `experimental_event_tree()` with a signed size and
  a timestamp (what `torch.profiler`'s own memory timeline reads). The running sum of those sizes in time
  order is exact; its maximum is the peak. That run is separate from the timed ones (profiler overhead).
- CUDA: `torch.cuda.max_memory_allocated()` after `reset_peak_memory_stats()`, minus the bytes allocated
  before the call.
Time: CPU, the minimum over repeated calls (shared cores only ever add time), fewer repeats as calls get
longer (one for a call over 5 s); CUDA, `triton.testing.do_bench` median. torch uses 2 CPU threads.
`fwd` runs with inputs that require grad, as in training (the graph is built, its saved tensors count
towards the peak), like bench/kernels.py; `fwd+bwd` adds `torch.autograd.grad` to q, k, v.

A full-attention size is skipped, and recorded as such with the reason, when its predicted peak passes
8 GiB: the peak measured at the previous L times (L / L_prev)², or 4·B·H·L² bytes × (2 fwd, 4 fwd+bwd)
for the first L. For each L the JSON holds the full/probsparse and sdpa/probsparse ratios of time and
memory, and for each method and pass the growth exponents: least-squares slopes of log(memory) and
log(time) against log(L), next to the slope that L·ln L and L² have over the same range.

Each row also carries `tflops` and the fraction of the device's fp32 peak (`peak_fraction` against an fp32
matmul measured in the same run, `datasheet_fraction`; `bench/peak.py`). Work counted: full attention
4·B·H·L²·D forward; ProbSparse 2·B·H·L·S·D for the sparsity measure (Q against the S sampled keys) plus
4·B·H·u·L·D for the u selected queries' attention; fwd+bwd counts 3.5× the attention part (the measure
takes no gradient). The Triton path's fp32 dots are 3xTF32 on tensor cores, so its fraction of the fp32
matmul can pass 1. The file is rewritten after every L (`"complete": false` until the end).

    python bench/probsparse.py [--quick] [--tiny] [--device all|cpu|cuda] [--out PATH]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write  # noqa: E402
from bench.peak import fractions  # noqa: E402
from bench.peak import measure as measure_peak  # noqa: E402
from core.ops.attention.reference import attention_reference  # noqa: E402
from core.ops.probsparse import n_sampled, probsparse_attention, sample_keys  # noqa: E402
from core.ops.probsparse.reference import probsparse_attention_reference  # noqa: E402

B, H, D, FACTOR = 1, 8, 64, 5
LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
TINY_LENGTHS = (64, 128)
MEMORY_LIMIT = 8 * 2**30  # bytes: a full-attention size predicted past this is skipped
PASSES = ("fwd", "fwd+bwd")
Step = Callable[[], object]


def _cpu_peak(step: Step) -> tuple[int, float]:
    """(peak extra bytes, seconds) of one call, from the profiler's allocation events (see the docstring)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        t0 = time.perf_counter()
        step()
        seconds = time.perf_counter() - t0
    sizes: list[tuple[int, int]] = []  # (time ns, signed bytes)
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            sizes.append((event.start_time_ns, event.extra_fields.alloc_size))
        stack.extend(event.children)
    if not sizes:
        raise RuntimeError("the profiler recorded no CPU allocations: memory figures would be meaningless")
    live = peak = 0
    for _, size in sorted(sizes, key=lambda item: item[0]):
        live += size
        peak = max(peak, live)
    return peak, seconds


def _cpu_time_ms(step: Step, first_seconds: float, quick: bool) -> tuple[float, int]:
    """(minimum ms, repeats): about 1.5 s of repeats (3 at most with --quick, 10 without), two for calls
    of 1-5 s, one past that (the profiled call before it was the warm-up)."""
    cap = 3 if quick else 10
    reps = 1 if first_seconds > 5.0 else max(2, min(cap, int(1.5 / max(first_seconds, 1e-4))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times), reps


def _cuda_measure(step: Step, quick: bool) -> tuple[int, float, int]:
    """(peak extra bytes, median ms, repeats) on CUDA."""
    from triton.testing import do_bench

    step()  # warm-up: kernel compilation and allocator
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    ms = float(do_bench(step, warmup=5 if quick else 25, rep=50 if quick else 200, return_mode="median"))
    return peak, ms, 0


def _methods(dev: torch.device, index: torch.Tensor) -> dict[str, Callable[..., torch.Tensor]]:
    def probsparse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return probsparse_attention_reference(q, k, v, factor=FACTOR, index=index)

    def full(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return attention_reference(q, k, v)

    def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)

    methods = {"probsparse": probsparse, "full": full, "sdpa": sdpa}
    if dev.type == "cuda":

        def probsparse_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return probsparse_attention(q, k, v, factor=FACTOR, index=index, impl="triton")

        methods = {"probsparse_triton": probsparse_triton, **methods}
    return methods


def _step(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], do: torch.Tensor, backward: bool) -> Step:
    if not backward:
        return lambda: fn(*inputs)
    return lambda: torch.autograd.grad(fn(*inputs), inputs, do)


def _predicted_full_peak(seq: int, pass_: str, previous: dict[str, tuple[int, int]]) -> int:
    """Full attention's peak at `seq`: scaled by L² from the last measured L, else the analytic guess."""
    if pass_ in previous:
        prev_len, prev_peak = previous[pass_]
        return int(prev_peak * (seq / prev_len) ** 2)
    return 4 * B * H * seq * seq * (2 if pass_ == "fwd" else 4)


def flops(name: str, seq: int, pass_: str) -> float:
    """The work counted for a method at length `seq` (see the module docstring)."""
    if name.startswith("probsparse"):
        s = u = n_sampled(seq, FACTOR)
        measure, attend = 2.0 * B * H * seq * s * D, 4.0 * B * H * u * seq * D
        return measure + (attend if pass_ == "fwd" else 3.5 * attend)
    fwd = 4.0 * B * H * seq * seq * D
    return fwd if pass_ == "fwd" else 3.5 * fwd


def run(
    device: str,
    quick: bool,
    tiny: bool = False,
    peak: dict[str, Any] | None = None,
    on_rows: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(measured rows, skipped rows) for every L, method and pass on `device`; `on_rows(rows, skipped)` after
    each L."""
    dev = torch.device(device)
    quick = quick or tiny
    peak = peak or {}
    lengths = list(TINY_LENGTHS) if tiny else [seq for seq in LENGTHS if not quick or seq <= 2048]
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    full_peaks: dict[str, tuple[int, int]] = {}  # pass -> (L, peak bytes) last measured for `full`
    for seq in lengths:
        gen = torch.Generator(device=dev).manual_seed(seq)
        q, k, v = (torch.randn(B, H, seq, D, device=dev, generator=gen, requires_grad=True) for _ in "qkv")
        do = torch.randn(B, H, seq, D, device=dev, generator=gen)
        index = sample_keys(seq, seq, FACTOR, generator=torch.Generator().manual_seed(seq), device=dev)
        for name, fn in _methods(dev, index).items():
            for pass_ in PASSES:
                base = {"device": dev.type, "dtype": "fp32", "L": seq, "method": name, "pass": pass_}
                if name == "full":
                    predicted = _predicted_full_peak(seq, pass_, full_peaks)
                    if predicted > MEMORY_LIMIT:
                        reason = f"predicted peak {predicted / 2**30:.1f} GiB > {MEMORY_LIMIT / 2**30:.0f} GiB limit"
                        skipped.append({**base, "skipped": True, "reason": reason})
                        print(f"skip L={seq} {name} {pass_}: {reason}", flush=True)
                        continue
                step = _step(fn, [q, k, v], do, pass_ == "fwd+bwd")
                if dev.type == "cuda":
                    try:
                        peak_bytes, ms, reps = _cuda_measure(step, quick)
                    except Exception as exc:  # out of memory, or the kernel failing to build: the other rows stand
                        reason = f"{type(exc).__name__}: {str(exc)[:160]}"
                        skipped.append({**base, "skipped": True, "failed": True, "reason": reason})
                        torch.cuda.empty_cache()
                        continue
                else:
                    peak_bytes, first = _cpu_peak(step)
                    ms, reps = _cpu_time_ms(step, first, quick)
                if name == "full":
                    full_peaks[pass_] = (seq, peak_bytes)
                tflops = flops(name, seq, pass_) / (ms * 1e-3) / 1e12
                row = {**base, "ms": round(ms, 3), "peak_bytes": peak_bytes, "peak_mib": round(peak_bytes / 2**20, 2)}
                row.update(reps=reps, tflops=float(f"{tflops:.4g}"), **fractions(peak, tflops=tflops))
                if name.startswith("probsparse"):
                    row.update(sampled_keys=n_sampled(seq, FACTOR), selected_queries=n_sampled(seq, FACTOR))
                rows.append(row)
                print(f"L={seq:6d} {name:18s} {pass_:8s} {ms:11.2f} ms {peak_bytes / 2**20:10.1f} MiB", flush=True)
        del q, k, v, do
        if on_rows is not None:
            on_rows(rows, skipped)
    return rows, skipped


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per device, L and pass: baseline / probsparse for time and peak memory (> 1: ProbSparse wins)."""
    by_key = {(r["device"], r["L"], r["pass"], r["method"]): r for r in rows}
    out = []
    for dev, seq, pass_ in sorted({(r["device"], r["L"], r["pass"]) for r in rows}):
        ours = by_key.get((dev, seq, pass_, "probsparse"))
        if ours is None:
            continue
        entry: dict[str, Any] = {"device": dev, "L": seq, "pass": pass_}
        for base in ("full", "sdpa"):
            other = by_key.get((dev, seq, pass_, base))
            entry[f"{base}_over_probsparse_time"] = round(other["ms"] / ours["ms"], 2) if other else None
            entry[f"{base}_over_probsparse_memory"] = (
                round(other["peak_bytes"] / ours["peak_bytes"], 2) if other and ours["peak_bytes"] else None
            )
        out.append(entry)
    return out


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def growth(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fitted exponents of memory and time in L per device, method and pass (at least two sizes)."""
    out = []
    for dev, name, pass_ in sorted({(r["device"], r["method"], r["pass"]) for r in rows}):
        pts = sorted(
            (r["L"], r["peak_bytes"], r["ms"])
            for r in rows
            if (r["device"], r["method"], r["pass"]) == (dev, name, pass_)
        )
        if len(pts) < 2 or any(p[1] <= 0 for p in pts):
            continue
        lengths = [p[0] for p in pts]
        out.append(
            {
                "device": dev,
                "method": name,
                "pass": pass_,
                "L": lengths,
                "memory_exponent": round(_slope(lengths, [p[1] for p in pts]), 3),
                "time_exponent": round(_slope(lengths, [p[2] for p in pts]), 3),
                # What the models predict over the same range: L·ln L has a slope a little above 1.
                "L_log_L_exponent": round(_slope(lengths, [x * math.log(x) for x in lengths]), 3),
                "L_squared_exponent": 2.0,
            }
        )
    return out


def _table(rows: list[dict[str, Any]], skipped: list[dict[str, Any]], ratio_rows: list[dict[str, Any]]) -> str:
    """One line per (device, L, pass): every method's ms and MiB, then full/probsparse ratios."""
    methods = sorted({r["method"] for r in rows} | {s["method"] for s in skipped}, key=_method_order)
    by_key = {(r["device"], r["L"], r["pass"], r["method"]): r for r in rows}
    ratio_by = {(r["device"], r["L"], r["pass"]): r for r in ratio_rows}
    head = ["device", "L", "pass"] + [f"{m} {unit}" for m in methods for unit in ("ms", "MiB")]
    head += ["full/ps time", "full/ps mem", "sdpa/ps time", "sdpa/ps mem"]
    lines = []
    for dev, seq, pass_ in sorted({(r["device"], r["L"], r["pass"]) for r in rows + skipped}):
        cells = [dev, str(seq), pass_]
        for m in methods:
            r = by_key.get((dev, seq, pass_, m))
            cells += [f"{r['ms']:.1f}", f"{r['peak_mib']:.1f}"] if r else ["skip", "skip"]
        rat = ratio_by.get((dev, seq, pass_), {})
        for key in ("full_over_probsparse_time", "full_over_probsparse_memory"):
            cells.append("" if rat.get(key) is None else f"{rat[key]:.1f}x")
        for key in ("sdpa_over_probsparse_time", "sdpa_over_probsparse_memory"):
            cells.append("" if rat.get(key) is None else f"{rat[key]:.2f}x")
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    text = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    text += ["  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) for cells in lines]
    return "\n".join(text)


def _method_order(name: str) -> int:
    order = ["probsparse_triton", "probsparse", "full", "sdpa"]
    return order.index(name) if name in order else len(order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="L <= 2048 only, fewer repeats")
    parser.add_argument("--tiny", action="store_true", help=f"L in {TINY_LENGTHS}: proves the script, measures nothing")
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all", help="all: CPU, then CUDA if any")
    parser.add_argument("--out", type=Path, default=None, help="result file (default bench/results/probsparse.json)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    t0, load_start = time.perf_counter(), os.getloadavg()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    if not devices:
        raise SystemExit("--device cuda: no CUDA device here")
    peaks = {d: measure_peak(d, torch.float32, args.tiny) for d in devices}
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for dev in devices:
        done_rows, done_skipped = list(rows), list(skipped)  # the earlier devices' rows, kept in each write

        def partial(r: list[dict[str, Any]], s: list[dict[str, Any]], done=done_rows, gone=done_skipped) -> None:
            _save(args, done + r, gone + s, peaks, t0, load_start, complete=False)

        dev_rows, dev_skipped = run(dev, args.quick, args.tiny, peaks[dev], partial)
        rows, skipped = rows + dev_rows, skipped + dev_skipped
    path, payload = _save(args, rows, skipped, peaks, t0, load_start, complete=True)
    print()
    print(_table(rows, skipped, payload["ratios"]))
    print()
    for g in payload["growth"]:
        print(
            f"{g['device']} {g['method']:18s} {g['pass']:8s} memory ~ L^{g['memory_exponent']:.2f}  "
            f"time ~ L^{g['time_exponent']:.2f}  (L log L: {g['L_log_L_exponent']:.2f}, L^2: 2)"
        )
    print(f"wrote {path}")


def _save(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    peaks: dict[str, Any],
    t0: float,
    load_start: tuple[float, float, float],
    complete: bool,
) -> tuple[Path, dict[str, Any]]:
    """Write the payload (every row so far); `complete` is False for the writes after each L."""
    ratio_rows, growth_rows = ratios(rows), growth(rows)
    payload: dict[str, Any] = {
        "config": {"B": B, "H": H, "D": D, "dtype": "fp32", "causal": False, "factor": FACTOR, "threads": 2},
        "quick": args.quick,
        "tiny": args.tiny,
        "complete": complete,
        "peak": peaks,
        "memory_method": "CPU: running sum of torch.profiler (profile_memory) allocation events, max = peak "
        "extra bytes over what was live before the call; CUDA: max_memory_allocated - memory_allocated before",
        "time_method": "CPU: min over repeats (1 when a call takes > 5 s); CUDA: triton do_bench median",
        "seconds": round(time.perf_counter() - t0, 1),
        # 1/5/15-minute load averages: above the 2 threads used, other work shared the cores and the CPU
        # times are inflated (memory figures are unaffected: they count bytes, not seconds).
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "results": rows,
        "skipped": skipped,
        "ratios": ratio_rows,
        "growth": growth_rows,
    }
    if "cuda" not in peaks:
        payload["note"] = "no GPU in this run: CPU rows only; the Triton path has no figures here"
    return write("probsparse", payload, args.out), payload


if __name__ == "__main__":
    main()
