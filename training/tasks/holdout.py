"""The `Holdout` protocol: how retraining scores champion and challenger of a task (placeholder; being filled in)."""

from __future__ import annotations

from typing import Protocol


class Holdout(Protocol):
    task: str
