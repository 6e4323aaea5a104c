"""Reference rotary position embedding (RoPE) in plain PyTorch: the spec the Triton kernel is tested against.

Shapes: B batch, H heads, L tokens, D head dim, R = rotated dims (even, ≤ D).
  x [B, H, L, D]; positions [L] (shared by the batch) or [B, L], integers.
Only the first R = int(D · fraction) dims rotate; dims R..D pass through unchanged (Moirai-MoE
rotates half of each head, uni2ts `QueryKeyProjection(partial_factor=(0.0, 0.5))`). Within the
rotated dims the pairs are (i, i + R/2), the GPT-NeoX "rotate-half" layout (Su et al. 2021 pair
adjacent dims instead; the two differ by a fixed permutation of the weights):
  θ_i = pos · base^(−2i/R),  i < R/2
  y_i       = x_i cos θ_i − x_{i+R/2} sin θ_i
  y_{i+R/2} = x_{i+R/2} cos θ_i + x_i sin θ_i
Angles and the rotation run in fp32; the output has x's dtype.
"""

from __future__ import annotations

import torch


def rope_rotary_dims(head_dim: int, fraction: float) -> int:
    """R = int(head_dim · fraction), validated: 0 ≤ fraction ≤ 1 and R even."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"RoPE fraction must be in [0, 1], got {fraction}")
    rot = int(head_dim * fraction)
    if rot % 2:
        raise ValueError(f"RoPE rotates pairs: int({head_dim} * {fraction}) = {rot} dims is odd")
    return rot


def rope_inv_freq(rot: int, base: float, device: torch.device | str | None = None) -> torch.Tensor:
    """inv_freq [R/2] = base^(−2i/R) in fp32, computed in fp64 so every implementation shares the same table."""
    exponent = torch.arange(0, rot, 2, dtype=torch.float64, device=device) / rot  # [R/2]
    return torch.pow(float(base), -exponent).to(torch.float32)


def check_rope_inputs(x: torch.Tensor, positions: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"RoPE expects x [B, H, L, D], got {tuple(x.shape)}")
    b, _, l, _ = x.shape
    if positions.dtype.is_floating_point or positions.dtype.is_complex or positions.dtype == torch.bool:
        raise TypeError(f"RoPE positions must be integers, got {positions.dtype}")
    if tuple(positions.shape) not in ((l,), (b, l)):
        raise ValueError(f"positions must be [L] = ({l},) or [B, L] = ({b}, {l}), got {tuple(positions.shape)}")


def rope_reference(
    x: torch.Tensor, positions: torch.Tensor, *, fraction: float = 1.0, base: float = 10000.0
) -> torch.Tensor:
    """x [B, H, L, D] with its first int(D·fraction) dims rotated by position; see the module docstring."""
    check_rope_inputs(x, positions)
    rot = rope_rotary_dims(x.shape[-1], fraction)
    if rot == 0:
        return x
    half = rot // 2
    angles = positions.to(device=x.device, dtype=torch.float32)[..., None] * rope_inv_freq(rot, base, x.device)
    if positions.dim() == 2:
        angles = angles[:, None]  # [B, L, R/2] -> [B, 1, L, R/2], broadcast over heads
    cos, sin = angles.cos(), angles.sin()  # [L, R/2] or [B, 1, L, R/2]
    xf = x.float()
    x1, x2, rest = xf[..., :half], xf[..., half:rot], xf[..., rot:]  # [B, H, L, R/2] ×2, [B, H, L, D−R]
    out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)  # [B, H, L, D]
    return out.to(x.dtype)
