"""The two baselines beside ART in `bench/eeg_accuracy.py`.

- `ResCNN`: a 1D-ResCNN-style denoiser (Sun et al., "A novel end-to-end 1D-ResCNN model to remove
  artifact from EEG signals", Neurocomputing 404, 2020): three parallel branches of 1-D convolutions over
  time with kernel sizes 3, 5 and 7, each a stem and two residual blocks (conv-BN-ReLU-conv-BN + skip),
  concatenated and projected back to the channels by a 1×1 convolution. The original is single-channel;
  here the channels are its input channels (the same multichannel windows ART sees), and each window is
  z-scored inside like ART's, so both train on the same pairs with the same loss.
- `ica_clean`: the cleaning ART's pairs come from, run on the noisy test stream itself: MNE extended-infomax
  ICA + ICLabel (brain components with p >= 0.8 kept), as a lab would clean a recording without a model.

Shapes: B windows, N channels, T samples, C conv channels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from data.eeg.pairs import ica_pair
from data.eeg.readers import Recording


class ResBlock(nn.Module):
    def __init__(self, c: int, k: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(c, c, k, padding=k // 2), nn.BatchNorm1d(c), nn.ReLU(),
            nn.Conv1d(c, c, k, padding=k // 2), nn.BatchNorm1d(c),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        return torch.relu(x + self.body(x))


class ResCNN(nn.Module):
    """Noisy windows x [B, N, T] -> clean [B, N, T] in the units of x."""

    def __init__(self, n_channels: int, width: int = 32, blocks: int = 2):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(n_channels, width, k, padding=k // 2), nn.BatchNorm1d(width), nn.ReLU(),
                *[ResBlock(width, k) for _ in range(blocks)],
            )
            for k in (3, 5, 7)
        )  # fmt: skip
        self.out = nn.Conv1d(3 * width, n_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2), keepdim=True)
        std = torch.sqrt(x.var(dim=(1, 2), keepdim=True, unbiased=False) + 1e-8)
        z = (x - mean) / std
        h = torch.cat([b(z) for b in self.branches], dim=1)  # [B, 3C, T]
        return self.out(h) * std + mean


def ica_clean(noisy: np.ndarray, channels: tuple[str, ...], sfreq: float, seed: int = 0) -> np.ndarray:
    """ICA + ICLabel cleaning of one continuous stream [N, T] (µV). Interpolated template channels make the
    data rank-deficient, so the decomposition has at most rank - 1 components (20 at most)."""
    rank = int(np.linalg.matrix_rank(noisy - noisy.mean(axis=0, keepdims=True), tol=1e-6 * np.abs(noisy).max()))
    rec = Recording(data=noisy, channels=channels, sfreq=sfreq)
    return ica_pair(rec, n_components=max(2, min(20, rank - 1)), seed=seed).clean
