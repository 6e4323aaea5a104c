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
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} cpu x{os.cpu_count()} (torch {torch.__version__})"


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=RESULTS.parent
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def write(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {
        "commit": commit(),
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        **payload,
    }
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def read(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}
