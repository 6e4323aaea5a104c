"""IFactFormer-m (Yang, Wang & Wang, "Implicit factorized transformer approach to fast prediction of
turbulent channel flows", Sci. China PMA 2026, arXiv:2412.18840; official code huiyu-2002/IFactFormer-m
`libs/model.py`, `libs/factorization_module.py`, `libs/attention.py`), over FactFormer's factorized
attention (Li, Shu & Barati Farimani, "Scalable Transformer for PDE Surrogate Modeling", NeurIPS 2023).

One step of a flow field u[B, *S, V] -> u_next[B, *S, V] on a fixed 2D or 3D grid:
  lift      a per-component 1×1 map to D/2 channels, GELU, a linear map to D (no bias)
  position  + Linear(Gaussian Fourier features of the physical coordinates), once
  implicit  u ← u + block(u) / K, K times, with ONE block (weights shared by every iteration)
  project   D -> D/2, GELU, -> V
The block is a factorized, softmax-free kernel integral. For every axis a, the latent field is pooled
(mean) over the other axes into a sequence of N_a tokens; queries and keys of that sequence, rotated
by RoPE in physical coordinates, give a kernel K_a = q kᵀ [N_a, N_a] per head (no softmax: a linear
integral operator). The "-m" variant applies each K_a along its own axis to the SAME value field and
concatenates the d results; the original ("o", FactFormer) chains them, K_x(K_y(K_z v)).

Legend: B batch, S spatial axes (X, Y(, Z)), d = len(S), V field components, D width, H heads,
C value dims per head, E = kernel_multiplier·C query/key dims per head, N_a points along axis a,
K iterations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.nn.rollout import autoregress
from core.ops.rope import rope_inv_freq
from forecasters.ifactformer.config import IFactFormerConfig


def apply_kernel_along(kernel: torch.Tensor, v: torch.Tensor, axis: int) -> torch.Tensor:
    """(K ×_a v)[..., i, ...] = Σ_j K[i, j] v[..., j, ...] along spatial axis `axis` of v.

    kernel [B, H, N_a, N_a]; v [B, H, *S, C] -> [B, H, *S, C]. The axis is moved next to the heads and
    the rest of the field flattened, so the contraction is one batched matmul [N_a, N_a] @ [N_a, M·C]."""
    b, h = v.shape[:2]
    moved = v.movedim(2 + axis, 2)  # [B, H, N_a, *rest, C]
    out = torch.matmul(kernel, moved.reshape(b, h, moved.shape[2], -1))  # [B, H, N_a, M·C]
    return out.reshape(moved.shape).movedim(2, 2 + axis)


def factorized_kernel_integral(v: torch.Tensor, kernels: list[torch.Tensor], parallel: bool = True) -> torch.Tensor:
    """The factorized, softmax-free kernel integral of a value field.

    v [B, H, *S, C] with d = len(S) spatial axes; kernels[a] [B, H, N_a, N_a], one per axis (already
    scaled: no softmax, no 1/N_a, as the official code).
      parallel (IFactFormer-m): [B, H, *S, d·C] = concat over a of (K_a ×_a v), axis-major in the last dim;
                               each axis' result depends on v and its own kernel only.
      chained (FactFormer / IFactFormer-o): [B, H, *S, C] = K_0 ×_0 (K_1 ×_1 ( ... v)). Contractions along
                               different axes commute, so the order is immaterial; the product is the point.
    Cost: Σ_a B·H·N·N_a·C multiply-adds (N = Π N_a), versus B·H·N²·C for full attention over the grid."""
    if len(kernels) != v.dim() - 3:
        raise ValueError(f"need one kernel per spatial axis: v {tuple(v.shape)}, {len(kernels)} kernels")
    if parallel:
        return torch.cat([apply_kernel_along(k, v, a) for a, k in enumerate(kernels)], dim=-1)
    for a, k in enumerate(kernels):
        v = apply_kernel_along(k, v, a)
    return v


def rope_physical(x: torch.Tensor, coords: torch.Tensor, scale: float, base: float = 10000.0) -> torch.Tensor:
    """Rotate x [B, H, N, E] by angles scale·coord·base^(−2i/E) in the rotate-half layout.

    The official RotaryEmbedding (min_freq 1/64 => scale 64) with real-valued coordinates [N]; the frequency
    table and layout are `core.ops.rope`'s, whose op takes integer positions only (test: at integer
    coordinates and scale 1 the two agree). q·k then depends on the coordinates only through their difference."""
    half, dtype = x.shape[-1] // 2, torch.promote_types(x.dtype, torch.float32)  # fp32 at least, as core's op
    inv_freq = rope_inv_freq(x.shape[-1], base, x.device).to(dtype)
    angles = (coords.to(dtype) * scale)[:, None] * inv_freq  # [N, E/2]
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :half].to(dtype), x[..., half:].to(dtype)  # [B, H, N, E/2] ×2
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


class IFactFormerAxisPool(nn.Module):
    """The official PoolingReducer: Linear (no bias), mean over every spatial axis but `axis`, then a
    pre-norm GEGLU MLP. [B, *S, D] -> [B, N_axis, D]."""

    def __init__(self, width: int, axis: int):
        super().__init__()
        self.axis = axis
        self.to_in = nn.Linear(width, width, bias=False)
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 2 * width)  # GEGLU: GELU(first half) · second half
        self.down = nn.Linear(width, width)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        others = tuple(1 + a for a in range(u.dim() - 2) if a != self.axis)
        # A bias-free Linear commutes with the mean, so pooling first is the official map at 1/(N/N_a) the cost.
        x = self.to_in(u.mean(dim=others))  # [B, N_axis, D]
        gate, value = self.up(self.norm(x)).chunk(2, dim=-1)  # [B, N_axis, D] ×2
        return self.down(F.gelu(gate) * value)  # [B, N_axis, D]


class IFactFormerAxisKernel(nn.Module):
    """The official LowRankKernel along one axis: K = scale · RoPE(q) RoPE(k)ᵀ per head, no softmax.
    [B, N_a, D] tokens and their coordinates [N_a] -> kernel [B, H, N_a, N_a]."""

    def __init__(self, width: int, n_heads: int, qk_dim: int, rope_scale: float, scale: float, dropout: float):
        super().__init__()
        self.n_heads, self.qk_dim = n_heads, qk_dim
        self.rope_scale, self.scale = rope_scale, scale
        self.to_q = nn.Linear(width, n_heads * qk_dim, bias=False)
        self.to_k = nn.Linear(width, n_heads * qk_dim, bias=False)
        self.drop = nn.Dropout(dropout)
        # Official init: small q/k (Xavier gain 0.02), so the unnormalised kernel starts small.
        nn.init.xavier_uniform_(self.to_q.weight, gain=0.02)
        nn.init.xavier_uniform_(self.to_k.weight, gain=0.02)

    def forward(self, x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.to_q(x).view(b, n, self.n_heads, self.qk_dim).transpose(1, 2)  # [B, H, N_a, E]
        k = self.to_k(x).view(b, n, self.n_heads, self.qk_dim).transpose(1, 2)  # [B, H, N_a, E]
        q, k = rope_physical(q, coords, self.rope_scale), rope_physical(k, coords, self.rope_scale)
        return self.drop(torch.matmul(q, k.transpose(-1, -2)) * self.scale)  # [B, H, N_a, N_a]


class IFactFormerBlock(nn.Module):
    """The official FABlock3D_m (variant "m") / FABlock3D_o ("o"), for any number of axes.
    [B, *S, D] -> [B, *S, D]: the update the implicit layer adds (divided by K)."""

    def __init__(self, c: IFactFormerConfig):
        super().__init__()
        self.n_heads, self.head_dim, self.parallel = c.n_heads, c.head_dim, c.variant == "m"
        self.in_norm = nn.LayerNorm(c.width)
        self.to_v = nn.Linear(c.width, c.n_heads * c.head_dim, bias=False)
        self.to_in = nn.Linear(c.width, c.width, bias=False)
        self.pools = nn.ModuleList([IFactFormerAxisPool(c.width, a) for a in range(c.n_axes)])
        self.kernels = nn.ModuleList(
            [
                IFactFormerAxisKernel(
                    c.width, c.n_heads, c.kernel_multiplier * c.head_dim, c.rope_scale, c.kernel_scale, c.dropout
                )
                for _ in range(c.n_axes)
            ]
        )
        mixed = c.n_heads * c.head_dim * (c.n_axes if self.parallel else 1)
        self.out_in = nn.Linear(mixed, c.width, bias=False)
        self.out = nn.Linear(c.width, c.width, bias=False)

    def mix(self, u: torch.Tensor, coords: list[torch.Tensor]) -> torch.Tensor:
        """The kernel integral before the output MLP: [B, *S, D] -> [B, *S, H·d·C] (parallel; channels
        ordered head, axis, value dim as the official rearrange) or [B, *S, H·C] (chained)."""
        h = self.in_norm(u)
        v = self.to_v(h)  # [B, *S, H·C]
        h = self.to_in(h)  # [B, *S, D]
        branches = zip(self.pools, self.kernels, coords, strict=True)
        kernels = [kern(pool(h), xs) for pool, kern, xs in branches]  # d × [B, H, N_a, N_a]
        v = v.unflatten(-1, (self.n_heads, self.head_dim)).movedim(-2, 1)  # [B, H, *S, C]
        mixed = factorized_kernel_integral(v, kernels, self.parallel)  # [B, H, *S, d·C] or [B, H, *S, C]
        return mixed.movedim(1, -2).flatten(-2)  # [B, *S, H·d·C]

    def forward(self, u: torch.Tensor, coords: list[torch.Tensor]) -> torch.Tensor:
        x = self.mix(u, coords)
        # InstanceNorm (no affine, eps 1e-5): each channel standardised over the grid, per sample. It also
        # makes the block blind to a positive rescaling of any axis kernel, so the missing 1/N_a is harmless.
        spatial = tuple(range(1, x.dim() - 1))
        var, mean = torch.var_mean(x, dim=spatial, keepdim=True, unbiased=False)
        x = (x - mean) * torch.rsqrt(var + 1e-5)
        return self.out(F.gelu(self.out_in(x)))  # [B, *S, D]


class IFactFormer(nn.Module):
    """u[B, X, Y(, Z), V] -> u_next of the same shape; `rollout(u, steps)` -> [B, steps, X, Y(, Z), V]."""

    rff: torch.Tensor  # [d, D/2] fixed Gaussian Fourier matrix (a saved buffer)

    def __init__(self, config: IFactFormerConfig):
        super().__init__()
        self.config = c = config
        # Lift: the official grouped 1×1 conv (each component to D/(2V) channels, with bias), GELU, then a
        # bias-free map to D (its conv over the input time window, one step here).
        self.lift_in = nn.Conv1d(c.n_components, c.width // 2, kernel_size=1, groups=c.n_components)
        self.lift_out = nn.Linear(c.width // 2, c.width, bias=False)
        # Positions: fixed Gaussian Fourier features [sin, cos](2π x·B), B ~ N(0, rff_scale²) [d, D/2], not
        # trained (requires_grad=False in the official code) but saved with the weights, then a Linear.
        self.register_buffer("rff", torch.randn(c.n_axes, c.width // 2) * c.rff_scale)
        self.pos_proj = nn.Linear(c.width, c.width)
        self.block = IFactFormerBlock(c)  # the implicit layer: one block, iterated n_iterations times
        self.proj_hidden = nn.Linear(c.width, c.width // 2, bias=False)
        self.proj_out = nn.Linear(c.width // 2, c.n_components)
        # Physical coordinates per axis, endpoints included (official get_pos_lst: linspace(0, L, N)).
        for a, (n, length) in enumerate(zip(c.grid, c.domain, strict=True)):
            self.register_buffer(f"coords_{a}", torch.linspace(0.0, length, n), persistent=False)

    def coords(self) -> list[torch.Tensor]:
        return [getattr(self, f"coords_{a}") for a in range(self.config.n_axes)]

    def check_input(self, u: torch.Tensor) -> None:
        c = self.config
        want = (*c.grid, c.n_components)
        if u.dim() != len(want) + 1 or tuple(u.shape[1:]) != want:
            raise ValueError(f"expected u of shape [B, {', '.join(map(str, want))}], got {tuple(u.shape)}")

    def lift(self, u: torch.Tensor) -> torch.Tensor:
        """u [B, *S, V] -> latent [B, *S, D], positional features added."""
        b, spatial = u.shape[0], u.shape[1:-1]
        x = self.lift_in(u.reshape(b, -1, u.shape[-1]).transpose(1, 2))  # [B, D/2, N]
        x = self.lift_out(F.gelu(x.transpose(1, 2)))  # [B, N, D]
        grid = torch.stack(torch.meshgrid(*self.coords(), indexing="ij"), dim=-1).reshape(-1, len(spatial))  # [N, d]
        phase = 2 * math.pi * grid @ self.rff  # [N, D/2]
        x = x + self.pos_proj(torch.cat([phase.sin(), phase.cos()], dim=-1))  # [B, N, D]
        return x.reshape(b, *spatial, -1)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """latent [B, *S, D] -> u [B, *S, V]."""
        return self.proj_out(F.gelu(self.proj_hidden(h)))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        self.check_input(u)
        h, coords, k = self.lift(u), self.coords(), self.config.n_iterations
        for _ in range(k):  # the implicit iteration: a fixed-step residual update with shared weights
            h = h + self.block(h, coords) / k
        return self.project(h)

    def rollout(self, u: torch.Tensor, steps: int) -> torch.Tensor:
        """Autoregressive: u [B, *S, V] -> [B, steps, *S, V], each step fed the previous prediction
        (`core.nn.rollout.autoregress`: in eval no graph is kept)."""
        return autoregress(self, u, steps)
