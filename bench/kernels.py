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
Other ops add rows through `bench/kernels_norm.py` (`run_norms`) when that module is present.

    python bench/kernels.py [--quick]       # --quick: a subset that finishes in about a minute on CPU
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


def _configs(device: torch.device, quick: bool) -> tuple[torch.dtype, str, list[tuple[int, int]]]:
    if device.type == "cuda":
        lengths = (1024, 4096) if quick else (512, 1024, 2048, 4096, 8192)
        return torch.bfloat16, "triton", [(seq, d) for seq in lengths for d in (64, 128)]
    lengths = (256, 512) if quick else (256, 512, 1024)
    return torch.float32, "reference", [(seq, 64) for seq in lengths]


def run_attention(device: str, quick: bool) -> list[dict[str, Any]]:
    """Rows in the kernels.json format for attention on `device` ("cuda", "cuda:0" or "cpu")."""
    dev = torch.device(device)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        # One thread, as in bench/kernels_norm.py: on shared cores OpenMP barriers add scheduler noise.
        torch.set_num_threads(1)
    try:
        return _measure(dev, quick)
    finally:
        torch.set_num_threads(threads)


def _measure(dev: torch.device, quick: bool) -> list[dict[str, Any]]:
    dtype, impl, shapes = _configs(dev, quick)
    if impl == "triton":
        from core.ops.attention.triton import attention_triton as ours_fn
    else:
        ours_fn = attention_reference
    b, h = 4, 8
    results = []
    for seq, d in shapes:
        gen = torch.Generator(device=dev).manual_seed(0)
        q, k, v = (torch.randn(b, h, seq, d, device=dev, dtype=dtype, generator=gen, requires_grad=True) for _ in "qkv")
        do = torch.randn(b, h, seq, d, device=dev, dtype=dtype, generator=gen)
        for with_bias in (False, True):
            bias = torch.randn(1, h, seq, seq, device=dev, dtype=dtype, generator=gen) if with_bias else None
            for causal in (False, True):
                try:
                    results += _rows(ours_fn, impl, [q, k, v], do, bias, causal, dev, quick)
                except torch.cuda.OutOfMemoryError as exc:  # a long L on a smaller GPU: keep the other rows
                    results.append({"op": "attention", "impl": impl, "L": seq, "D": d, "error": str(exc)[:200]})
                    torch.cuda.empty_cache()
    return results


def _rows(
    ours_fn: Callable[..., torch.Tensor],
    impl: str,
    inputs: list[torch.Tensor],
    do: torch.Tensor,
    bias: torch.Tensor | None,
    causal: bool,
    dev: torch.device,
    quick: bool,
) -> list[dict[str, Any]]:
    """The fwd and fwd+bwd rows of one configuration, ours and SDPA timed back to back."""
    b, h, seq, d = inputs[0].shape
    dtype = inputs[0].dtype

    def ours(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return ours_fn(q, k, v, bias=bias, causal=causal)

    sdpa = _sdpa_call(bias, causal, seq, dev)
    err = _rel_rms(ours(*inputs).detach(), sdpa(*inputs).detach())  # a wrong kernel shows in the file
    backend = sdpa_backend(_step(sdpa, inputs, do, backward=False))
    rows = []
    for pass_ in ("fwd", "fwd+bwd"):
        backward = pass_ == "fwd+bwd"
        ms = _time_ms(_step(ours, inputs, do, backward), dev, quick)
        base_ms = _time_ms(_step(sdpa, inputs, do, backward), dev, quick)
        rows.append(
            {
                "op": "attention",
                "impl": impl,
                "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                "dtype": DTYPE_NAMES[dtype],
                "B": b,
                "H": h,
                "L": seq,
                "D": d,
                "bias": bias is not None,
                "bias_shape": list(bias.shape) if bias is not None else None,
                "causal": causal,
                "pass": pass_,
                "ms": round(ms, 4),
                "tflops": round(_flops(b, h, seq, seq, d, causal, pass_) / (ms * 1e-3) / 1e12, 3),
                "baseline": BASELINE,
                "baseline_ms": round(base_ms, 4),
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


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["op", "impl", "dtype", "L", "D", "bias", "causal", "pass", "ms", "tflops", "gbps", "baseline"]
    cols += ["baseline_ms", "ratio", "baseline_backend"]
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a fast subset of the shapes")
    args = parser.parse_args()

    t0 = time.perf_counter()
    rows = run_attention(args.device, args.quick)
    if run_norms is not None:
        rows += run_norms(args.device, args.quick)
    payload: dict[str, Any] = {
        "baseline": "torch.nn.functional.scaled_dot_product_attention, default backend (attention rows); "
        "see bench/kernels_norm.py for the norm rows",
        "quick": args.quick,
        "seconds": round(time.perf_counter() - t0, 1),
        "results": rows,
    }
    if torch.device(args.device).type != "cuda":
        payload["note"] = CPU_NOTE
        print(CPU_NOTE)
    print(_table([r for r in rows if "error" not in r]))
    for r in rows:
        if "error" in r:
            print(f"skipped {r['op']} L={r.get('L')} D={r.get('D')}: {r['error']}")
    print(f"wrote {write('kernels', payload)}")


if __name__ == "__main__":
    main()
