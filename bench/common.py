"""Shared bits of the benchmark scripts: result files with commit, machine and command."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"{platform.processor() or platform.machine()} cpu x{os.cpu_count()} (torch {torch.__version__})"


def commit() -> str:
    """HEAD's short hash; `SEER_COMMIT` where the tree travels without its .git (bench/gpu.sh sets it)."""
    if os.environ.get("SEER_COMMIT"):
        return os.environ["SEER_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=RESULTS.parent
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def write(name: str, payload: dict[str, Any], path: Path | None = None) -> Path:
    """Write `payload` (with commit, machine and command) to bench/results/<name>.json, or to `path`
    (a dry run or a GPU run writes elsewhere, never into bench/results)."""
    path = Path(path) if path is not None else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "commit": commit(),
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        **payload,
    }
    # Write then rename: a bench killed mid-write (bench/gpu_run.py ends a step at its share) leaves the
    # previous complete file, never half of one.
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(part, path)
    return path


def read(name: str, path: Path | None = None) -> dict[str, Any]:
    path = Path(path) if path is not None else RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}
