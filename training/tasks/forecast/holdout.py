"""The forecast holdout (placeholder; being filled in)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class _Placeholder:
    task: str = "forecast"


FORECAST_HOLDOUT = _Placeholder()
