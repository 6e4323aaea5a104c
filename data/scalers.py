"""Per-variate standard scaler whose state is plain data (saved inside the model bundle)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StandardScaler:
    """z-score per variate: `(x - mean) / std`, with the population std (ddof=0) like scikit-learn.

    Fitted on the training rows only (the ETT protocol); a constant variate gets std 1 so that it
    maps to 0 instead of NaN.
    """

    mean: np.ndarray  # [N]
    std: np.ndarray  # [N]

    @classmethod
    def fit(cls, values: np.ndarray) -> StandardScaler:
        if values.ndim != 2 or len(values) == 0:
            raise ValueError(f"fit expects a non-empty [T, N] array, got shape {values.shape}")
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        std = np.where(std < 1e-12, 1.0, std)
        return cls(mean=mean.astype(np.float64), std=std.astype(np.float64))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return (values * self.std + self.mean).astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "standard", "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StandardScaler:
        if d.get("kind") != "standard":
            raise ValueError(f"unknown scaler kind {d.get('kind')!r}")
        return cls(mean=np.asarray(d["mean"], np.float64), std=np.asarray(d["std"], np.float64))
