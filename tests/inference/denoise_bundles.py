"""Tiny ART bundles the denoise tests share, and EEG-like request data. Imported as
`tests.inference.denoise_bundles` (not a test module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.bundle import save_bundle
from signals.eeg_artifact import ART, ARTConfig

CHANNELS = ["Fp1", "Fp2", "Cz", "Oz"]
SFREQ, WINDOW = 128.0, 64


def eeg(n_channels: int = 4, seconds: float = 2.0, sfreq: float = SFREQ, seed: int = 0) -> np.ndarray:
    """[C, T] µV: alpha, theta and noise per channel, tens of µV."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sfreq))) / sfreq
    alpha = 20 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6, size=(n_channels, 1)))
    theta = 10 * np.sin(2 * np.pi * 6 * t + rng.uniform(0, 6, size=(n_channels, 1)))
    return alpha + theta + 5 * rng.normal(size=(n_channels, len(t)))


def make_denoise_bundle(directory: Path, *, max_cost: float | None = None, name: str = "art-test") -> Path:
    torch.manual_seed(0)
    cfg = ARTConfig.tiny(n_channels=len(CHANNELS), window=WINDOW)
    transform: dict[str, Any] = {
        "channels": CHANNELS,
        "sfreq": SFREQ,
        "window": WINDOW,
        "l_freq": 1.0,
        "h_freq": 40.0,
        "line_freq": None,
        "average_reference": True,
        "dataset": "test",
    }
    if max_cost is not None:
        transform["max_cost"] = max_cost
    meta = {
        "name": name,
        "model": "art",
        "task": "denoise",
        "model_config": cfg.to_dict(),
        "transform": transform,
        "example_input": {"sfreq": SFREQ, "channels": CHANNELS, "data": np.round(eeg(), 2).tolist()},
        "metrics": {"test_rrmse_t": 0.5},
    }
    return save_bundle(directory, ART(cfg), meta)
