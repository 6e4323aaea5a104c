"""The device's peak, measured in the same process and from the datasheet, for "fraction of peak" columns.

A kernel row's `tflops` (or `gbps` for memory-bound ops) means little alone; next to it the benches put
- `peak_fraction`: against what this device reaches in this process: a large dense matmul in the row's
  dtype through torch (cuBLAS on CUDA, with torch's default settings, so fp32 is true fp32, not TF32),
  and a large device-to-device copy (bytes read + written) for bandwidth. "How far from the best a
  vendor library gets here."
- `datasheet_fraction`: against the vendor's dense (no 2:4 sparsity) peak for the dtype and the memory
  bandwidth, where the device name is in `DATASHEETS`; None elsewhere (and on CPU).
Our fp32 Triton paths use 3xTF32 tensor-core dots (`core.ops.triton_utils.dot_precision`), so an fp32
Triton row can pass 1.0 against the fp32 matmul; the datasheet's TF32 figure is recorded beside it.

    python bench/peak.py [--device cuda|cpu] [--tiny]    # prints the peak block as JSON
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}

# (lower-case substring of torch.cuda.get_device_name, label, dense TFLOP/s by dtype, GB/s), most specific
# first. Sources: NVIDIA H100 and H200 product datasheets (dense figures are half the "with sparsity"
# ones), A100 datasheet.
DATASHEETS: tuple[tuple[str, str, dict[str, float], float], ...] = (
    ("h200 nvl", "H200 NVL", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}, 4800.0),
    ("h200", "H200 SXM", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}, 4800.0),
    ("h100 nvl", "H100 NVL", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}, 3900.0),
    ("h100 pcie", "H100 PCIe", {"bf16": 756.5, "fp16": 756.5, "tf32": 378.0, "fp32": 51.2}, 2000.0),
    ("h100", "H100 SXM5 (80GB HBM3)", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}, 3350.0),
    ("a100 80gb pcie", "A100 80GB PCIe", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}, 1935.0),
    ("a100-sxm4-80gb", "A100 SXM4 80GB", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}, 2039.0),
    ("a100", "A100 40GB", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}, 1555.0),
)


def datasheet(name: str) -> tuple[str, dict[str, float], float] | None:
    """(label, dense TFLOP/s by dtype, GB/s) for a CUDA device name, or None when it is not in the table."""
    lowered = name.lower()
    for key, label, tflops, gbps in DATASHEETS:
        if key in lowered:
            return label, tflops, gbps
    return None


def _time_s(step: Any, dev: torch.device, reps: int) -> float:
    """Seconds per call: do_bench's median on CUDA, the minimum of `reps` calls on CPU."""
    if dev.type == "cuda":
        from triton.testing import do_bench

        return float(do_bench(step, warmup=10, rep=100, return_mode="median")) * 1e-3
    step()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(device: str | torch.device, dtype: torch.dtype, tiny: bool = False) -> dict[str, Any]:
    """The peak block: measured matmul TFLOP/s and copy GB/s in `dtype` on `device`, plus the datasheet's.

    Sizes: an n×n×n matmul (CUDA 8192, CPU 1024; `tiny` 512 / 128) and a copy of 1 GiB (CUDA) or
    64 MiB (CPU; `tiny` 8 MiB) — big enough to leave the caches, small enough to take about a second."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    n = (512 if tiny else 8192) if cuda else (128 if tiny else 1024)
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=dev, dtype=dtype, generator=gen)
    matmul_s = _time_s(lambda: a @ b, dev, reps=3 if tiny else 5)
    nbytes = (2**30 if not tiny else 2**26) if cuda else (2**23 if tiny else 2**26)
    a = b = torch.empty(0)  # free the matmul operands before the copy's buffers
    src = torch.empty(nbytes // 4, device=dev, dtype=torch.float32).normal_(generator=gen)
    dst = torch.empty_like(src)
    copy_s = _time_s(lambda: dst.copy_(src), dev, reps=3 if tiny else 5)
    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    sheet = datasheet(name) if cuda else None
    dtype_name = DTYPE_NAMES.get(dtype, str(dtype))
    return {
        "device": name,
        "dtype": dtype_name,
        "matmul_n": n,
        "matmul_tflops": float(f"{2.0 * n**3 / matmul_s / 1e12:.4g}"),
        "copy_bytes": nbytes,
        "copy_gbps": float(f"{2.0 * nbytes / copy_s / 1e9:.4g}"),  # read + write
        "datasheet": sheet[0] if sheet else None,
        "datasheet_tflops": sheet[1].get(dtype_name) if sheet else None,
        "datasheet_tf32_tflops": sheet[1]["tf32"] if sheet else None,
        "datasheet_gbps": sheet[2] if sheet else None,
    }


def fractions(peak: dict[str, Any], tflops: float | None = None, gbps: float | None = None) -> dict[str, Any]:
    """`peak_fraction` / `datasheet_fraction` of a row from its TFLOP/s (compute-bound) or GB/s (memory-bound)."""

    def ratio(x: float | None, y: float | None) -> float | None:
        return float(f"{x / y:.3g}") if x is not None and y else None

    if tflops is not None:
        return {
            "peak_fraction": ratio(tflops, peak.get("matmul_tflops")),
            "datasheet_fraction": ratio(tflops, peak.get("datasheet_tflops")),
        }
    return {
        "peak_fraction": ratio(gbps, peak.get("copy_gbps")),
        "datasheet_fraction": ratio(gbps, peak.get("datasheet_gbps")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default=None)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    names = {v: k for k, v in DTYPE_NAMES.items()}
    dtype = names[args.dtype] if args.dtype else (torch.bfloat16 if args.device.startswith("cuda") else torch.float32)
    print(json.dumps(measure(args.device, dtype, args.tiny), indent=2))


if __name__ == "__main__":
    main()
