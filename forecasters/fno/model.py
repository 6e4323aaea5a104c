"""Fourier neural operator (Li, Kovachki, Azizzadenesheli, Liu, Bhattacharya, Stuart & Anandkumar,
"Fourier Neural Operator for Parametric Partial Differential Equations", ICLR 2021), the baseline for
the rollout task. Architecture of the paper's reference scripts (neuraloperator's first release,
`fourier_2d.py` / `fourier_3d.py`), written for 2 or 3 axes:
  lift      [u, grid coordinates] -> D channels (fc0)
  L layers  v ← GELU(K v + W v): K a spectral convolution (FFT, a learned complex matrix per kept
            mode, inverse FFT), W a 1×1 convolution; no GELU after the last layer
  project   D -> 128 -> V (fc1, GELU, fc2)
Our own implementation rather than the `neuraloperator` package (see README.md for why).

Legend: B batch, S spatial axes (X, Y(, Z)), d = len(S), V field components, D width,
m_a modes kept along axis a, F = 2^(d−1) corners of the kept spectrum.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from core.nn.rollout import autoregress
from forecasters.fno.config import FNOConfig


class FNOSpectralConv(nn.Module):
    """K v = IFFT(R · FFT(v)) with R a learned [D_in, D_out] complex matrix per kept mode.

    v [B, D_in, *S] -> [B, D_out, *S]. The last axis uses a real FFT (N//2 + 1 non-negative frequencies)
    and keeps its lowest m_d; every other axis keeps its m_a lowest frequencies of each sign, so the kept
    set is F = 2^(d−1) corner blocks of the half spectrum, each with its own weights (Li et al.'s
    weights1..4 in 3D). Every other mode is zeroed. Weights are stored as real [..., 2] (real, imag)
    pairs so that parameter counts and checkpoints see real numbers."""

    def __init__(self, in_channels: int, out_channels: int, modes: tuple[int, ...]):
        super().__init__()
        self.modes = modes
        n_corners = 2 ** (len(modes) - 1)
        scale = 1.0 / (in_channels * out_channels)  # Li et al.: scale · U[0, 1) for real and imaginary parts
        self.weight = nn.Parameter(scale * torch.rand(n_corners, in_channels, out_channels, *modes, 2))

    def corners(self, shape: tuple[int, ...]) -> list[tuple[slice, ...]]:
        """Index of each corner block in the half spectrum of a field of spatial `shape`: for every axis but
        the last, the lowest m (frequencies 0..m−1) or the highest m (−m..−1); the last axis 0..m−1."""
        ranges = [(slice(0, m), slice(n - m, n)) for m, n in zip(self.modes[:-1], shape[:-1], strict=True)]
        return [(*corner, slice(0, self.modes[-1])) for corner in itertools.product(*ranges)]

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        spatial = tuple(v.shape[2:])
        dims = tuple(range(2, v.dim()))
        # FFTs in fp32 at least (half-precision cuFFT takes powers of two only); fp64 stays fp64.
        real = torch.promote_types(v.dtype, torch.float32)
        v_ft = torch.fft.rfftn(v.to(real), dim=dims)  # [B, D_in, *S'] complex, S' = S with last N//2 + 1
        weight = torch.view_as_complex(self.weight.to(real))  # [F, D_in, D_out, *m]
        out_ft = v_ft.new_zeros(v.shape[0], weight.shape[2], *v_ft.shape[2:])  # [B, D_out, *S']
        for f, corner in enumerate(self.corners(spatial)):
            index = (slice(None), slice(None), *corner)
            out_ft[index] = torch.einsum("bi...,io...->bo...", v_ft[index], weight[f])  # [B, D_out, *m]
        return torch.fft.irfftn(out_ft, s=spatial, dim=dims).to(v.dtype)  # [B, D_out, *S]


class FNO(nn.Module):
    """u[B, X, Y(, Z), V] -> u_next of the same shape; `rollout(u, steps)` -> [B, steps, X, Y(, Z), V]."""

    grid_xyz: torch.Tensor  # [*S, d] coordinates in [0, 1] (derived from the config, not saved)

    def __init__(self, config: FNOConfig):
        super().__init__()
        self.config = c = config
        d = c.n_axes
        self.lift = nn.Linear(c.n_components + (d if c.grid_features else 0), c.width)  # fc0
        self.spectral = nn.ModuleList([FNOSpectralConv(c.width, c.width, c.modes) for _ in range(c.n_layers)])
        conv = nn.Conv2d if d == 2 else nn.Conv3d
        self.pointwise = nn.ModuleList([conv(c.width, c.width, kernel_size=1) for _ in range(c.n_layers)])  # W
        self.proj_hidden = nn.Linear(c.width, c.projection)  # fc1
        self.proj_out = nn.Linear(c.projection, c.n_components)  # fc2
        # Li et al.'s get_grid: each axis' coordinates in [0, 1], endpoints included.
        axes = [torch.linspace(0.0, 1.0, n) for n in c.grid]
        self.register_buffer("grid_xyz", torch.stack(torch.meshgrid(*axes, indexing="ij"), -1), persistent=False)

    def check_input(self, u: torch.Tensor) -> None:
        c = self.config
        want = (*c.grid, c.n_components)
        if u.dim() != len(want) + 1 or tuple(u.shape[1:]) != want:
            raise ValueError(f"expected u of shape [B, {', '.join(map(str, want))}], got {tuple(u.shape)}")

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        self.check_input(u)
        if self.config.grid_features:
            u = torch.cat([u, self.grid_xyz.expand(u.shape[0], *self.grid_xyz.shape).to(u.dtype)], dim=-1)
        v = self.lift(u).movedim(-1, 1)  # [B, D, *S]
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise, strict=True)):
            v = spectral(v) + pointwise(v)
            v = F.gelu(v) if i < last else v  # the reference scripts skip the activation after the last layer
        return self.proj_out(F.gelu(self.proj_hidden(v.movedim(1, -1))))  # [B, *S, V]

    def rollout(self, u: torch.Tensor, steps: int) -> torch.Tensor:
        """Autoregressive: u [B, *S, V] -> [B, steps, *S, V], each step fed the previous prediction
        (`core.nn.rollout.autoregress`: in eval no graph is kept)."""
        return autoregress(self, u, steps)
