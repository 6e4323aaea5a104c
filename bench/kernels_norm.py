"""LayerNorm / RMSNorm speed: the fused Triton kernels against PyTorch, rows for bench/results/kernels.json.

`run_norms(device, quick)` is called by `bench/kernels.py`, which writes the file. Baselines, measured
in the same run on the same tensors:
- CUDA (bf16, rows 4096..32768 × hidden 512..8192): our Triton kernel vs eager torch
  (`F.layer_norm`, `F.rms_norm`) and vs `torch.compile` of that same eager call (Inductor's fused
  kernel), forward and forward+backward.
- CPU (fp32, small sizes): the reference path vs eager torch, so the file records what the fallback
  costs; no Triton and no torch.compile there.
Norms are memory-bound, so rows carry `gbps` (bytes that must move: fwd reads x and writes y, 2·M·N
elements; the backward also reads x and dy and writes dx, 5·M·N in all; weights and the fp32 row
statistics are ignored) and `tflops` is null.

    python bench/kernels_norm.py [--quick]     # prints the rows; bench/kernels.py records them
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.ops.norm import layer_norm, rms_norm  # noqa: E402

EPS = {"layer_norm": 1e-5, "rms_norm": 1e-6}
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def _eager(op: str) -> Callable:
    """The eager PyTorch call we compare against (also what torch.compile is given)."""
    eps = EPS[op]
    if op == "layer_norm":
        return lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b, eps)
    if hasattr(F, "rms_norm"):
        return lambda x, w, b: F.rms_norm(x, (x.shape[-1],), w, eps)

    def rms(x, w, b):  # torch < 2.4: the usual fp32 formula
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)

    return rms


def _ours(op: str, impl: str) -> Callable:
    eps = EPS[op]
    if op == "layer_norm":
        return lambda x, w, b: layer_norm(x, w, b, eps, impl=impl)
    return lambda x, w, b: rms_norm(x, w, eps, impl=impl)


def _step(fn: Callable, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, dy: torch.Tensor, backward: bool):
    """A zero-argument closure: forward only, or forward + backward to every input (no .grad accumulation)."""
    inputs = [t for t in (x, w, b) if t is not None]
    if not backward:
        return lambda: fn(x, w, b)
    return lambda: torch.autograd.grad(fn(x, w, b), inputs, dy)


def _time_ms(step: Callable[[], object], device: torch.device, quick: bool) -> float:
    """Milliseconds per call: the median on CUDA, the minimum on CPU (shared CPU cores only ever add time)."""
    if device.type == "cuda":
        from triton.testing import do_bench

        # do_bench flushes L2 between calls, so a small input does not run from cache.
        return float(do_bench(step, warmup=10 if quick else 25, rep=40 if quick else 100, return_mode="median"))
    for _ in range(3):
        step()
    times = []
    for _ in range(10 if quick else 30):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def _row(op, impl, device_name, dtype, rows, hidden, pass_, ms, baseline, baseline_ms) -> dict:
    elements = (2 if pass_ == "fwd" else 5) * rows * hidden
    gbps = elements * torch.tensor([], dtype=dtype).element_size() / (ms * 1e-3) / 1e9
    return {
        "op": op,
        "impl": impl,
        "device": device_name,
        "dtype": DTYPE_NAMES.get(dtype, str(dtype)),
        "L": rows,
        "D": hidden,
        "bias": False,
        "causal": False,
        "pass": pass_,
        "ms": round(ms, 5),
        "tflops": None,
        "gbps": round(gbps, 2),
        "baseline": baseline,
        "baseline_ms": round(baseline_ms, 5),
        "ratio": round(baseline_ms / ms, 3),
    }


def run_norms(device: str, quick: bool) -> list[dict]:
    """Rows in the kernels.json format for LayerNorm and RMSNorm on `device` ("cuda", "cuda:0" or "cpu")."""
    dev = torch.device(device)
    if dev.type == "cuda":
        device_name, dtype, impl = torch.cuda.get_device_name(dev), torch.bfloat16, "triton"
        shapes = [(r, h) for r in (4096, 32768) for h in (512, 4096)]
        if not quick:
            shapes = [(r, h) for r in (4096, 8192, 16384, 32768) for h in (512, 1024, 2048, 4096, 8192)]
    else:
        device_name, dtype, impl = "cpu", torch.float32, "reference"
        shapes = [(256, 64), (1024, 256)] if quick else [(256, 64), (1024, 256), (4096, 512)]

    # CPU rows run on one thread: on shared cores every OpenMP barrier can wait a scheduler tick
    # (measured: 7 ms vs 0.17 ms for a 1024×256 F.layer_norm with 2 threads on a loaded 2-core box).
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _measure(dev, device_name, dtype, impl, shapes, quick)
    finally:
        torch.set_num_threads(threads)


def _measure(dev: torch.device, device_name: str, dtype: torch.dtype, impl: str, shapes, quick: bool) -> list[dict]:
    results = []
    for op in ("layer_norm", "rms_norm"):
        for rows, hidden in shapes:
            gen = torch.Generator(device=dev).manual_seed(0)
            x = torch.randn(rows, hidden, device=dev, dtype=dtype, generator=gen, requires_grad=True)
            w = torch.randn(hidden, device=dev, dtype=dtype, generator=gen, requires_grad=True)
            b = torch.randn(hidden, device=dev, dtype=dtype, generator=gen, requires_grad=True)
            b = b if op == "layer_norm" else None
            dy = torch.randn(rows, hidden, device=dev, dtype=dtype, generator=gen)
            baselines: dict[str, Callable] = {"torch eager": _eager(op)}
            if dev.type == "cuda":
                # A fresh Dynamo cache per shape: past the recompile limit torch.compile quietly runs eager.
                torch._dynamo.reset()
                baselines["torch.compile"] = torch.compile(_eager(op), dynamic=False)
            for pass_ in ("fwd", "fwd+bwd"):
                backward = pass_ == "fwd+bwd"
                ms = _time_ms(_step(_ours(op, impl), x, w, b, dy, backward), dev, quick)
                for name, fn in baselines.items():
                    base_ms = _time_ms(_step(fn, x, w, b, dy, backward), dev, quick)
                    results.append(_row(op, impl, device_name, dtype, rows, hidden, pass_, ms, name, base_ms))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for row in run_norms(args.device, args.quick):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
