"""Tiny forecast bundles the inference and service tests share: a point iTransformer (fixed variates,
global scaler, hourly calendar or none) and a probabilistic any-variate Moirai-MoE (instance scaled),
with histories in their original units. Imported as `tests.inference.forecast_bundles` (not a test module).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forecasters.itransformer import ITransformer, ITransformerConfig
from forecasters.moirai_moe import MoiraiMoE, MoiraiMoEConfig
from inference.bundle import save_bundle

L, H, N = 16, 8, 3
START = datetime(2024, 3, 1, 0, 0)


def hourly_stamps(n: int = L, start: datetime = START) -> list[str]:
    return [(start + timedelta(hours=k)).isoformat() for k in range(n)]


def point_history(seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(L, N)) * [2.0, 1.0, 30.0] + [10.0, -5.0, 100.0]).tolist()


def make_bundle(directory: Path, *, calendar: bool = True, seed: int = 0) -> Path:
    """A tiny iTransformer bundle: hourly calendar features (4 marks) or none."""
    torch.manual_seed(seed)
    cfg = ITransformerConfig.tiny(n_marks=4 if calendar else 0)
    meta = {
        "name": "itransformer-test",
        "model": "itransformer",
        "task": "forecast",
        "model_config": cfg.to_dict(),
        "transform": {
            "scaler": {"kind": "standard", "mean": [10.0, -5.0, 100.0], "std": [2.0, 1.0, 30.0]},
            "variates": ["a", "b", "c"],
            "calendar_freq": "h" if calendar else "",
            "step_seconds": 3600,
            "lookback": L,
            "horizon": H,
            "dataset": "test",
        },
        "example_input": {"history": point_history(1), "timestamps": hourly_stamps() if calendar else None},
        "metrics": {"test_mse": 0.5},
    }
    return save_bundle(directory, ITransformer(cfg), meta)


MOIRAI_CFG = MoiraiMoEConfig.tiny()  # lookback 32, horizon 16, max_horizon 64, patch 8, 8 sample paths
P_L, P_H, P_HMAX = MOIRAI_CFG.lookback, MOIRAI_CFG.horizon, MOIRAI_CFG.max_horizon


def any_history(n: int = 3, seed: int = 0) -> list[list[float | None]]:
    """L rows × n variates of noisy sines at very different levels and scales (original units)."""
    rng = np.random.default_rng(seed)
    t = np.arange(P_L)[:, None]
    level, amp = 10.0 ** np.arange(n) % 997, 1.0 + np.arange(n)
    values = level + amp * np.sin(2 * np.pi * t / 8 + np.arange(n)) + 0.1 * rng.normal(size=(P_L, n))
    return values.tolist()


def make_moirai_bundle(directory: Path, *, max_horizon: int = P_HMAX, example: bool = True) -> Path:
    """The bundle contract of instance-scaled probabilistic models (written by training), around tiny()."""
    torch.manual_seed(0)
    meta: dict[str, Any] = {
        "name": "moirai-test",
        "model": "moirai_moe",
        "task": "forecast",
        "model_config": MOIRAI_CFG.to_dict(),
        "transform": {
            "kind": "instance",
            "scaler": None,
            "variates": None,
            "calendar_freq": "",
            "step_seconds": None,
            "lookback": P_L,
            "horizon": P_H,
            "max_horizon": max_horizon,
            "dataset": "corpus",
        },
        "probabilistic": True,
        "example_input": {"history": any_history(3)} if example else {},
        "metrics": {},
    }
    return save_bundle(directory, MoiraiMoE(MOIRAI_CFG), meta)
