"""The `Objective` protocol: what the one Lightning system needs from a task (placeholder; being filled in)."""

from __future__ import annotations

from typing import Protocol


class Objective(Protocol):
    task: str
