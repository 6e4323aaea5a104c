"""Normalisation modules.

- `LayerNorm`, `RMSNorm`: feature norms over the last dim, over the `core.ops.norm` ops (a fused Triton
  kernel on CUDA, the fp32 reference elsewhere). `LayerNorm` keeps `nn.LayerNorm`'s parameter names and
  init, so checkpoints load either way.
- `SeriesNorm`: per-variate instance normalisation of a forecast window (iTransformer's `use_norm`,
  the non-affine RevIN of Kim et al. 2022): each series is standardised by its own lookback
  statistics and the forecast is mapped back with them.

Shapes: B batch, L lookback, H horizon, N variates; D the normalised (last) dim of the feature norms.
"""

from __future__ import annotations

import torch
from torch import nn

from core.ops.norm import layer_norm, rms_norm


class LayerNorm(nn.Module):
    """`nn.LayerNorm(d)` over the last dim through the dispatched `layer_norm` op; state-dict keys `weight`, `bias`."""

    def __init__(
        self, dim: int, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True, impl: str = "auto"
    ):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.impl = impl
        self.weight = nn.Parameter(torch.ones(dim)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if elementwise_affine and bias else None

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., D] -> [..., D]
        return layer_norm(x, self.weight, self.bias, self.eps, impl=self.impl)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, affine={self.weight is not None}, bias={self.bias is not None}"


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight over the last dim (Zhang & Sennrich 2019); state-dict key `weight`."""

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = True, impl: str = "auto"):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.impl = impl
        self.weight = nn.Parameter(torch.ones(dim)) if elementwise_affine else None

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., D] -> [..., D]
        return rms_norm(x, self.weight, self.eps, impl=self.impl)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, affine={self.weight is not None}"


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
