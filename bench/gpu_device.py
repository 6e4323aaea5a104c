"""The device step of bench/gpu_run.py: what this run has to work with, as JSON.

Python, torch (and the CUDA it was built for), triton and the other packages the steps import, with their
versions; the GPU (name, compute capability, SMs, memory, driver); its peak in bf16 measured here
(`bench/peak.py`: a dense matmul and a copy, against the datasheet); and, per step, the packages it needs
that cannot be found (looked up with `importlib.util.find_spec`, nothing imported), so the runner skips
such a step with the reason instead of spending its share on an ImportError.

    python bench/gpu_device.py [--tiny] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Distributions whose versions the summary records (None: not installed).
PACKAGES = ("torch", "triton", "numpy", "pytest", "lightning", "mlflow", "mlflow-skinny", "polars", "sqlalchemy")
# Top-level modules each step imports beyond the standard library and the repository.
NEEDS: dict[str, tuple[str, ...]] = {
    "tests": ("torch", "pytest", "triton"),
    "kernels": ("torch", "triton"),
    "moe": ("torch", "triton"),
    "probsparse": ("torch", "triton"),
    "decode": ("torch", "numpy"),
    "accuracy": ("torch", "lightning", "mlflow", "polars", "sqlalchemy", "alembic", "safetensors"),
}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def missing() -> dict[str, list[str]]:
    """Per step, the modules it needs that this interpreter cannot find."""
    return {step: [m for m in mods if importlib.util.find_spec(m) is None] for step, mods in NEEDS.items()}


def _nvidia_smi() -> dict[str, str] | None:
    """Driver version and clocks from nvidia-smi, or None where it is absent or fails."""
    fields = "driver_version,name,memory.total,clocks.max.sm,clocks.max.memory,power.limit"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    values = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
    return dict(zip(fields.split(","), values, strict=False))


def gpu(tiny: bool) -> dict[str, Any]:
    """The torch view of the device, the driver's, and the measured bf16 peak (fp32 on CPU)."""
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            name=props.name,
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            memory_gib=round(props.total_memory / 2**30, 1),
            device_count=torch.cuda.device_count(),
            nvidia_smi=_nvidia_smi(),
        )
    from bench.peak import measure

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    info["peak"] = measure(dev, torch.bfloat16 if dev == "cuda" else torch.float32, tiny)
    return info


def report(tiny: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "packages": versions(),
        "missing": missing(),
        "env": {
            k: os.environ.get(k)
            for k in ("SEER_KERNELS", "TRITON_INTERPRET", "CUDA_VISIBLE_DEVICES", "SEER_COMMIT", "PYTHONPATH")
        },
    }
    if importlib.util.find_spec("torch") is not None:
        body.update(gpu(tiny))
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="small peak measurement (dry runs)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()
    body = report(args.tiny)
    text = json.dumps(body, indent=2)
    if args.json is not None:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
