"""Rotary position embedding for queries and keys over the `core.ops.rope` op.

Shapes: B batch, H heads, L tokens, D head dim. q and k are [B, H, L, D]; positions [L] or [B, L].
The default `fraction=0.5` rotates the first half of each head and leaves the rest position-free,
as Moirai-MoE does (uni2ts `QueryKeyProjection(partial_factor=(0.0, 0.5))`).
"""

from __future__ import annotations

import torch
from torch import nn

from core.ops.rope import apply_rope
from core.ops.rope.reference import rope_rotary_dims


class RotaryEmbedding(nn.Module):
    """Rotates q and k by their token positions so that q·k depends on the positions only through their difference."""

    def __init__(self, head_dim: int, fraction: float = 0.5, base: float = 10000.0, impl: str = "auto"):
        super().__init__()
        self.rotary_dims = rope_rotary_dims(head_dim, fraction)  # validates fraction and parity up front
        self.head_dim = head_dim
        self.fraction = fraction
        self.base = base
        self.impl = impl

    def forward(
        self,
        q: torch.Tensor,  # [B, H, Lq, D]
        k: torch.Tensor,  # [B, H, Lk, D]
        q_positions: torch.Tensor | None = None,  # [Lq] or [B, Lq]; default 0..Lq-1
        k_positions: torch.Tensor | None = None,  # [Lk] or [B, Lk]; default q_positions when Lk == Lq
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if q.shape[-1] != self.head_dim or k.shape[-1] != self.head_dim:
            raise ValueError(f"RotaryEmbedding({self.head_dim}) got head dims {q.shape[-1]} and {k.shape[-1]}")
        if q_positions is None:
            q_positions = torch.arange(q.shape[-2], device=q.device)
        if k_positions is None:
            k_positions = q_positions if k.shape[-2] == q.shape[-2] else torch.arange(k.shape[-2], device=k.device)
        return self._rotate(q, q_positions), self._rotate(k, k_positions)

    def _rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return apply_rope(x, positions, fraction=self.fraction, base=self.base, impl=self.impl)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, rotary_dims={self.rotary_dims}, base={self.base}"
