"""Kernel speed against PyTorch → bench/results/kernels.json (DESIGN §8).

Attention (this file): our Triton flash attention vs `torch.nn.functional.scaled_dot_product_attention`
with PyTorch's default backend choice, measured in the same run on the same tensors. Each row names
the backend SDPA actually ran (`baseline_backend`: flash / efficient / cudnn / math, read from the
profiler's op names, so no guess about its dispatch rules).
- CUDA: bf16, B=4, H=8 (B·H = 32), L ∈ {512, 1k, 2k, 4k, 8k}, D ∈ {64, 128}, causal or not, with or
  without an additive bias of shape [1, H, L, L] (one learned bias shared across the batch, as
  relative-position biases are; the bias takes no gradient in the fwd+bwd rows). SDPA refuses
  `is_causal` together with `attn_mask`, so for causal+bias its mask is bias + a -inf upper triangle,
  built outside the timed region; our kernel masks in-kernel and skips blocks above the diagonal.
- CPU: there is no Triton figure to take (the interpreter is a correctness tool); rows record our
  reference path vs SDPA on CPU in fp32 at small L, one thread, so the fallback's cost is on file.
- The shapes our models run (`model_cases`, rows labelled by `shape`), after the sweep: iTransformer
  (tokens = variates: N = 7 ETT, 21 weather, 321 electricity; B=32, 8 heads of d_model/8), Informer
  (B=32, 8 heads of 64: full self-attention at L = 96..720, the `attn="full"` encoder; the decoder's
  cross-attention, label+H queries over the distilled memory, today H=96 and original ETTh1 H=720) and
  Moirai-MoE Small (B=8, 6 heads of 64, L = 512..4096 tokens of 8 variates, with its additive bias
  [1, H, L, L] built by the model's own `AnyVariateAttention.attn_bias`: the binary same/other-variate
  bias and -inf for keys later in time; not `causal`, so both sides compute every block). On CPU
  only those with at most 2^23 scores per call run.
Every row carries `tflops` (and `baseline_tflops`) and the fraction of the device's peak
(`peak_fraction` against a matmul in the same dtype measured in this run, `datasheet_fraction` against
the vendor's dense peak; `bench/peak.py`); norm rows do the same with `gbps`. On CUDA the payload's
`goals` block checks the targets: attention >= 0.9x SDPA without a bias and >= 1.5x with one, L >= 2048.
The file is rewritten after every case (`"complete": false` until the end), so a run cut short keeps
what it measured. Other ops add rows through `bench/kernels_norm.py` (`run_norms`) when that module
is present.

    python bench/kernels.py [--quick] [--tiny] [--out PATH]
    # --quick: a subset (about a minute on CPU); --tiny: toy shapes that prove the script (dry runs);
    # --out: write there instead of bench/results/kernels.json
"""

from __future__ import annotations

import argparse
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

try:
    from bench.kernels_norm import run_norms
except ImportError:  # the norm rows are optional: attention alone still makes a valid file
    run_norms = None

CPU_NOTE = "no GPU in this run: CPU reference path only; no Triton figures exist"
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
BASELINE = "torch sdpa"
# Profiler op names → backend, most specific first ("flash_attention_for_cpu" is CPU flash).
SDPA_BACKENDS = (
    ("_scaled_dot_product_cudnn_attention", "cudnn"),
    ("_scaled_dot_product_flash_attention", "flash"),
    ("_scaled_dot_product_efficient_attention", "efficient"),
    ("_scaled_dot_product_fused_attention_overrideable", "overrideable"),
    ("_scaled_dot_product_attention_math", "math"),
)


def _time_ms(step: Callable[[], object], device: torch.device, quick: bool) -> float:
    """Milliseconds per call: the median on CUDA, the minimum on CPU (shared CPU cores only ever add time)."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return float(do_bench(step, warmup=10 if quick else 25, rep=50 if quick else 200, return_mode="median"))
    step()  # warm-up: allocator and kernel selection
    times = []
    for _ in range(3 if quick else 10):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def sdpa_backend(step: Callable[[], object]) -> str:
    """Which SDPA backend `step` runs, from the aten op names the profiler records."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    names = {event.name for event in prof.events()}
    for key, backend in SDPA_BACKENDS:
        if any(key in name for name in names):
            return backend
    return "unknown"


def _flops(b: int, h: int, lq: int, lk: int, d: int, causal: bool, pass_: str) -> float:
    # Forward: two matmuls of 2·Lq·Lk·D each; causal does half. Backward = 2.5× forward (five matmuls
    # against two), the FlashAttention papers' accounting, so fwd+bwd = 3.5× forward.
    fwd = 4.0 * b * h * lq * lk * d * (0.5 if causal else 1.0)
    return fwd if pass_ == "fwd" else 3.5 * fwd


def _step(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], do: torch.Tensor, backward: bool) -> Callable:
    """A zero-argument closure: forward only, or forward + backward to q, k, v (no .grad accumulation)."""
    if not backward:
        return lambda: fn(*inputs)
    return lambda: torch.autograd.grad(fn(*inputs), inputs, do)


def _rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


Case = dict[str, Any]  # {"shape", "B", "H", "Lq", "Lk", "D", "bias": None | "random" | "moirai", "causal"}
OnRows = Callable[[list[dict[str, Any]]], None]
CPU_MAX_SCORES = 2**23  # model shapes on CPU: at most this many attention scores (B·H·Lq·Lk) per call


def _sweep(device: torch.device, quick: bool, tiny: bool) -> tuple[torch.dtype, str, list[Case]]:
    """(dtype, impl, cases) of the L × D sweep: every bias × causal combination per (L, D)."""
    if tiny:  # toy sizes on the device's own path (Triton in bf16 on CUDA, the reference in fp32 on CPU)
        cuda = device.type == "cuda"
        dtype, impl = (torch.bfloat16, "triton") if cuda else (torch.float32, "reference")
        shapes, b, h = [(64, 16)], 2, 2
    elif device.type == "cuda":
        # Longest first: the goals are stated at L >= 2048, and a run cut short keeps the rows it wrote.
        lengths = (4096, 2048, 1024) if quick else (8192, 4096, 2048, 1024, 512)
        dtype, impl, shapes, b, h = torch.bfloat16, "triton", [(L, d) for L in lengths for d in (64, 128)], 4, 8
    else:
        lengths = (256, 512) if quick else (256, 512, 1024)
        dtype, impl, shapes, b, h = torch.float32, "reference", [(L, 64) for L in lengths], 4, 8
    cases = [
        {"shape": "sweep", "B": b, "H": h, "Lq": seq, "Lk": seq, "D": d, "bias": bias, "causal": causal}
        for seq, d in shapes
        for bias in (None, "random")
        for causal in (False, True)
    ]
    return dtype, impl, cases


def model_cases(device: torch.device, tiny: bool) -> list[Case]:
    """The attention calls our forecasters make (see the module docstring for the sources of each size)."""
    if tiny:  # the same three kinds at toy sizes
        return [
            {"shape": "itransformer N=7", "B": 2, "H": 2, "Lq": 7, "Lk": 7, "D": 16, "bias": None, "causal": False},
            {"shape": "informer cross", "B": 2, "H": 2, "Lq": 12, "Lk": 6, "D": 16, "bias": None, "causal": False},
            {"shape": "moirai-moe bias", "B": 2, "H": 2, "Lq": 32, "Lk": 32, "D": 8, "bias": "moirai", "causal": False},
        ]

    def case(shape: str, b: int, h: int, lq: int, lk: int, d: int, bias: str | None = None) -> Case:
        return {"shape": shape, "B": b, "H": h, "Lq": lq, "Lk": lk, "D": d, "bias": bias, "causal": False}

    cases = [
        case("itransformer ETTh1 N=7 d_model=256", 32, 8, 7, 7, 32),
        case("itransformer weather N=21 d_model=512", 32, 8, 21, 21, 64),
        case("itransformer electricity N=321 d_model=512", 32, 8, 321, 321, 64),
        *(case(f"informer full self-attention L={L}", 32, 8, L, L, 64) for L in (96, 192, 336, 720)),
        case("informer cross today H=96 (48+96 over 48)", 32, 8, 144, 48, 64),
        case("informer cross original ETTh1 H=720 (336+720 over 168)", 32, 8, 1056, 168, 64),
        *(case(f"moirai-moe small L={L} (8 variates)", 8, 6, L, L, 64, "moirai") for L in (512, 1024, 2048, 4096)),
    ]
    if device.type != "cuda":
        cases = [c for c in cases if c["B"] * c["H"] * c["Lq"] * c["Lk"] <= CPU_MAX_SCORES]
    return cases


def moirai_bias(heads: int, seq: int, dev: torch.device, dtype: torch.dtype, n_variates: int = 8) -> torch.Tensor:
    """Moirai-MoE's additive bias [1, H, L, L] for L tokens of `n_variates` (time-major), from the model's own
    `AnyVariateAttention.attn_bias` with its randomly initialised per-head same/other-variate scalars."""
    from forecasters.moirai_moe.config import MoiraiMoEConfig
    from forecasters.moirai_moe.model import AnyVariateAttention, token_ids

    if seq % n_variates:
        raise ValueError(f"L={seq} tokens is not a whole number of patches of {n_variates} variates")
    config = MoiraiMoEConfig.tiny(d_model=heads * 8, n_heads=heads)
    torch.manual_seed(0)
    layer = AnyVariateAttention(config).to(dev)
    variate_id, time_id = token_ids(seq // n_variates, n_variates, device=dev)
    with torch.no_grad():
        return layer.attn_bias(variate_id, time_id, variate_id, time_id).to(dtype)  # [1, H, L, L]


def run_attention(
    device: str, quick: bool, tiny: bool = False, peak: dict[str, Any] | None = None, on_rows: OnRows | None = None
) -> list[dict[str, Any]]:
    """Rows in the kernels.json format for attention on `device` ("cuda", "cuda:0" or "cpu"); `on_rows`
    gets every row so far after each case (the caller's incremental write)."""
    dev = torch.device(device)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        # One thread, as in bench/kernels_norm.py: on shared cores OpenMP barriers add scheduler noise.
        torch.set_num_threads(1)
    try:
        return _measure(dev, quick, tiny, peak or {}, on_rows)
    finally:
        torch.set_num_threads(threads)


def _measure(
    dev: torch.device, quick: bool, tiny: bool, peak: dict[str, Any], on_rows: OnRows | None
) -> list[dict[str, Any]]:
    dtype, impl, cases = _sweep(dev, quick, tiny)
    if impl == "triton":
        from core.ops.attention.triton import attention_triton as ours_fn
    else:
        ours_fn = attention_reference
    results: list[dict[str, Any]] = []
    for case in cases + model_cases(dev, tiny):
        try:
            inputs, do, bias = _tensors(case, dev, dtype)
            results += _rows(ours_fn, impl, inputs, do, bias, case, dev, quick, peak)
        except Exception as exc:  # OOM at a long L, or one variant failing to build: keep the other rows
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
            results.append({"op": "attention", "impl": impl, "shape": case["shape"], "L": case["Lq"], "D": case["D"]})
            results[-1]["error"] = error
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        if on_rows is not None:
            on_rows(results)
    return results


def _tensors(case: Case, dev: torch.device, dtype: torch.dtype):
    """([q, k, v] requiring grad, upstream gradient, bias or None) for one case, seeded."""
    b, h, lq, lk, d = case["B"], case["H"], case["Lq"], case["Lk"], case["D"]
    gen = torch.Generator(device=dev).manual_seed(0)
    q = torch.randn(b, h, lq, d, device=dev, dtype=dtype, generator=gen, requires_grad=True)
    k, v = (torch.randn(b, h, lk, d, device=dev, dtype=dtype, generator=gen, requires_grad=True) for _ in "kv")
    do = torch.randn(b, h, lq, d, device=dev, dtype=dtype, generator=gen)
    bias = None
    if case["bias"] == "random":  # one learned bias shared across the batch, as relative-position biases are
        bias = torch.randn(1, h, lq, lk, device=dev, dtype=dtype, generator=gen)
    elif case["bias"] == "moirai":
        bias = moirai_bias(h, lq, dev, dtype)
    return [q, k, v], do, bias


def _rows(
    ours_fn: Callable[..., torch.Tensor],
    impl: str,
    inputs: list[torch.Tensor],
    do: torch.Tensor,
    bias: torch.Tensor | None,
    case: Case,
    dev: torch.device,
    quick: bool,
    peak: dict[str, Any],
) -> list[dict[str, Any]]:
    """The fwd and fwd+bwd rows of one case, ours and SDPA timed back to back."""
    b, h, lq, d = inputs[0].shape
    lk, causal, dtype = inputs[1].shape[2], case["causal"], inputs[0].dtype

    def ours(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return ours_fn(q, k, v, bias=bias, causal=causal)

    sdpa = _sdpa_call(bias, causal, lq, dev)
    err = _rel_rms(ours(*inputs).detach(), sdpa(*inputs).detach())  # a wrong kernel shows in the file
    backend = sdpa_backend(_step(sdpa, inputs, do, backward=False))
    rows = []
    for pass_ in ("fwd", "fwd+bwd"):
        backward = pass_ == "fwd+bwd"
        ms = _time_ms(_step(ours, inputs, do, backward), dev, quick)
        base_ms = _time_ms(_step(sdpa, inputs, do, backward), dev, quick)
        flops = _flops(b, h, lq, lk, d, causal, pass_)
        tflops = flops / (ms * 1e-3) / 1e12
        rows.append(
            {
                "op": "attention",
                "impl": impl,
                "shape": case["shape"],
                "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                "dtype": DTYPE_NAMES[dtype],
                "B": b,
                "H": h,
                "L": lq,
                "Lk": lk,
                "D": d,
                "bias": bias is not None,
                "bias_shape": list(bias.shape) if bias is not None else None,
                "bias_kind": case["bias"],
                "causal": causal,
                "pass": pass_,
                "ms": round(ms, 4),
                "tflops": float(f"{tflops:.4g}"),
                **fractions(peak, tflops=tflops),
                "baseline": BASELINE,
                "baseline_ms": round(base_ms, 4),
                "baseline_tflops": float(f"{flops / (base_ms * 1e-3) / 1e12:.4g}"),
                "ratio": round(base_ms / ms, 3),
                "baseline_backend": backend,
                "rel_rms_vs_baseline": float(f"{err:.2e}"),
            }
        )
    return rows


def _sdpa_call(bias: torch.Tensor | None, causal: bool, seq: int, dev: torch.device) -> Callable[..., torch.Tensor]:
    """SDPA with the same semantics as our op; causal+bias folded into one additive mask (see docstring)."""
    if bias is None:
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    mask = bias
    if causal:
        upper = torch.ones(seq, seq, device=dev, dtype=torch.bool).triu(1)
        mask = bias.masked_fill(upper, float("-inf"))  # [1, H, L, L]
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


GOALS = (
    ("attention, no bias, L >= 2048: ours / SDPA", False, 0.9),
    ("attention, additive bias, L >= 2048: ours / SDPA", True, 1.5),
)


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets checked on the Triton sweep rows at L >= 2048 (per pass: the worst ratio)."""
    out = []
    for name, with_bias, target in GOALS:
        for pass_ in ("fwd", "fwd+bwd"):
            ratios = [
                r["ratio"]
                for r in rows
                if r.get("impl") == "triton"
                and r.get("shape") == "sweep"
                and r.get("bias") == with_bias
                and r.get("pass") == pass_
                and r.get("L", 0) >= 2048
            ]
            if ratios:
                worst = min(ratios)
                out.append({"goal": name, "pass": pass_, "target": target, "worst": worst, "met": worst >= target})
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["op", "impl", "shape", "dtype", "L", "Lk", "D", "bias", "causal", "pass", "ms", "tflops", "gbps"]
    cols += ["peak_fraction", "baseline", "baseline_ms", "ratio", "baseline_backend"]
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a fast subset of the shapes")
    parser.add_argument("--tiny", action="store_true", help="toy shapes: proves the script, measures nothing")
    parser.add_argument("--out", type=Path, default=None, help="result file (default bench/results/kernels.json)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    dev = torch.device(args.device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)  # the thread count the CPU rows run with
    peaks = {"attention": measure_peak(dev, dtype, args.tiny)}
    torch.set_num_threads(threads)

    def save(rows: list[dict[str, Any]], complete: bool) -> Path:
        payload: dict[str, Any] = {
            "baseline": "torch.nn.functional.scaled_dot_product_attention, default backend (attention rows); "
            "see bench/kernels_norm.py for the norm rows",
            "quick": args.quick,
            "tiny": args.tiny,
            "complete": complete,
            "seconds": round(time.perf_counter() - t0, 1),
            "peak": peaks,
            "goals": goals(rows),
            "results": rows,
        }
        if dev.type != "cuda":
            payload["note"] = CPU_NOTE
        return write("kernels", payload, args.out)

    rows = run_attention(args.device, args.quick, args.tiny, peaks["attention"], lambda r: save(r, False))
    if run_norms is not None:
        norm_rows = run_norms(args.device, args.quick or args.tiny)
        for r in norm_rows:  # memory-bound: the fraction of the measured copy bandwidth and the datasheet's
            r.update(fractions(peaks["attention"], gbps=r.get("gbps")))
        rows += norm_rows
    path = save(rows, True)
    if dev.type != "cuda":
        print(CPU_NOTE)
    print(_table([r for r in rows if "error" not in r]))
    errors = [r for r in rows if "error" in r]
    for r in errors:
        print(f"failed {r['op']} {r.get('shape')} L={r.get('L')} D={r.get('D')}: {r['error']}")
    for g in goals(rows):
        verdict = "met" if g["met"] else "MISSED"
        print(f"goal {g['goal']} ({g['pass']}): worst {g['worst']} vs target {g['target']}: {verdict}")
    print(f"wrote {path}")
    if errors:  # written, but a run with failed cases does not pass as a clean one
        sys.exit(f"{len(errors)} case(s) failed; see their 'error' rows in {path}")


if __name__ == "__main__":
    main()
