"""Shared by the retraining tests: tiny sine-wave data and jobs files for tiny smoke models."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from training.retrain import RetrainJob, load_jobs

TINY = ["data.lookback=24", "data.horizon=8", "data.batch_size=16", "model.use_norm=false"]


def sine_frame(n: int = 600, level: float = 0.0, level_until: int | None = None, start: datetime | None = None):
    """Hourly `date, a, b`; `level` is added to the rows before `level_until` (all rows by default)."""
    t = np.arange(n)
    start = start or datetime(2024, 1, 1)
    shift = np.where(t < (n if level_until is None else level_until), level, 0.0)
    return pl.DataFrame(
        {
            "date": [start + timedelta(hours=int(i)) for i in t],
            "a": np.sin(2 * np.pi * t / 24) + shift,
            "b": 2 * np.cos(2 * np.pi * t / 12) + shift,
        }
    )


def job_dict(name: str, data: str, **extra) -> dict:
    job = {
        "name": name,
        "recipe": "itransformer-etth1",
        "data": data,
        "cron": "0 3 * * *",
        "holdout_windows": 32,
        "min_improvement": 0.02,
        "smoke": True,
        "model": "sine",
        "overrides": TINY,
    }
    job.update(extra)
    return job


def write_jobs(path: Path, *jobs: dict, **top) -> Path:
    path.write_text(yaml.safe_dump({**top, "jobs": list(jobs)}))
    return path


def one_job(tmp_path: Path, **fields) -> RetrainJob:
    jobs = write_jobs(tmp_path / f"jobs-{fields.get('name', 'j')}.yaml", job_dict(**fields))
    return load_jobs(jobs).jobs[0]
