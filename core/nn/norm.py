"""Per-variate instance normalisation of a forecast window (iTransformer's `use_norm`, the
non-affine RevIN of Kim et al. 2022): each series is standardised by its own lookback statistics
and the forecast is mapped back with them.

Shapes: B batch, L lookback, H horizon, N variates.
"""

from __future__ import annotations

import torch
from torch import nn


class SeriesNorm(nn.Module):
    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x [B, L, N] -> (x_norm [B, L, N], (mean [B, 1, N], std [B, 1, N]))."""
        # Statistics are constants for the gradient, as in the official code (detach on the mean).
        mean = x.mean(dim=1, keepdim=True).detach()
        centered = x - mean
        std = torch.sqrt(torch.var(centered, dim=1, keepdim=True, unbiased=False) + self.eps)
        return centered / std, (mean, std)

    @staticmethod
    def denormalize(y: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """y [B, H, N] in normalised units -> original units of the window."""
        mean, std = stats
        return y * std + mean
