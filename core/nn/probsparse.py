"""Multi-head ProbSparse self-attention (Informer's `AttentionLayer(ProbAttention)`).

Shapes: B batch, L tokens, D model width, H heads, E = D / H head width.
The key sample is drawn from the global RNG while training (as the official code does on every
call) and from a generator seeded with `sample_seed` in eval mode, so a served model gives the same
forecast for the same input, whatever else is in its batch.
"""

from __future__ import annotations

import torch
from torch import nn

from core.ops.probsparse import probsparse_attention, sample_keys


class ProbSparseAttention(nn.Module):
    """Q/K/V projections, ProbSparse attention (`core.ops.probsparse`), output projection.

    `mix=True` reproduces the official decoder's "mix" reshape: the [B, H, L, E] output is read as
    [B, L, H·E] without first moving heads next to the width, which interleaves positions and heads.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        factor: int = 5,
        *,
        mix: bool = False,
        sample_seed: int = 0,
        impl: str = "auto",
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self.n_heads, self.factor, self.mix, self.sample_seed, self.impl = n_heads, factor, mix, sample_seed, impl
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, l, d = x.shape
        return x.view(b, l, self.n_heads, d // self.n_heads).transpose(1, 2)  # [B, H, L, E]

    def forward(self, x: torch.Tensor, *, causal: bool = False) -> torch.Tensor:  # [B, L, D] -> [B, L, D]
        b, l, d = x.shape
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
        generator = None if self.training else torch.Generator().manual_seed(self.sample_seed)
        index = sample_keys(l, l, self.factor, generator=generator, device=x.device)
        out = probsparse_attention(q, k, v, factor=self.factor, causal=causal, index=index, impl=self.impl)
        out = out.reshape(b, l, d) if self.mix else out.transpose(1, 2).reshape(b, l, d)
        return self.out_proj(out)
