"""Long recordings through a fixed-window model: overlapping windows out, a weighted overlap-add back.

`overlap_windows(x, window, hop)` cuts [N, T] into windows starting every `hop` samples, the last one
flush with the end (so every sample is covered); a recording shorter than one window is extended by
mirror padding and cropped again afterwards. `stitch` adds the processed windows back with a taper
(Hann + a floor, so the recording's first and last samples, covered by one window, still count) and
divides by the summed taper: for the identity model the round trip gives back the input exactly (to
float rounding), and a model's window edges (where it sees least context) weigh least.

Shapes: N channels, T samples, W window, K windows.
"""

from __future__ import annotations

import numpy as np


def window_starts(length: int, window: int, hop: int) -> list[int]:
    """Starts of the windows covering [0, length): every `hop`, plus one flush with the end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, hop))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def overlap_windows(x: np.ndarray, window: int, hop: int) -> tuple[np.ndarray, list[int]]:
    """[N, T] -> (windows [K, N, W], starts); mirror-padded to W first when T < W."""
    if hop < 1 or hop > window:
        raise ValueError(f"hop must be in [1, window], got {hop}")
    if x.shape[1] < window:
        x = np.pad(x, ((0, 0), (0, window - x.shape[1])), mode="symmetric")
    starts = window_starts(x.shape[1], window, hop)
    return np.stack([x[:, s : s + window] for s in starts]), starts


def taper(window: int) -> np.ndarray:
    """[W]: a Hann window lifted by a floor of 1e-3 (positive everywhere)."""
    return np.hanning(window) + 1e-3


def stitch(windows: np.ndarray, starts: list[int], length: int) -> np.ndarray:
    """Windows [K, N, W] at `starts` -> [N, length]: taper-weighted overlap-add over the summed taper."""
    k, n, w = windows.shape
    total = max(length, starts[-1] + w)
    out = np.zeros((n, total))
    weight = np.zeros(total)
    t = taper(w)
    for win, s in zip(windows, starts, strict=True):
        out[:, s : s + w] += win * t
        weight[s : s + w] += t
    return (out / weight)[:, :length]
