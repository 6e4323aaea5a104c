"""Multi-head attention block over the fused `core.ops.attention` op.

Shapes: B batch, Lq/Lk query/key tokens, D model width, H heads, E = D / H head width.
"""

from __future__ import annotations

import torch
from torch import nn

from core.ops.attention import attention


class MultiHeadAttention(nn.Module):
    """Q/K/V projections, the attention op, output projection (Vaswani et al. 2017).

    `attn_bias` is added to the scores before softmax (broadcastable to [B, H, Lq, Lk]); attention
    dropout is applied to the probabilities, as in the Informer/iTransformer `FullAttention`.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, impl: str = "auto"):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.impl = impl
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, l, d = x.shape
        return x.view(b, l, self.n_heads, d // self.n_heads).transpose(1, 2)  # [B, H, L, E]

    def forward(
        self,
        x: torch.Tensor,  # [B, Lq, D]
        context: torch.Tensor | None = None,  # [B, Lk, D]; None = self-attention
        *,
        attn_bias: torch.Tensor | None = None,
        causal: bool = False,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        context = x if context is None else context
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(context)), self._heads(self.v_proj(context))
        out = attention(
            q,
            k,
            v,
            bias=attn_bias,
            causal=causal,
            key_padding_mask=key_padding_mask,
            dropout_p=self.dropout if self.training else 0.0,
            impl=self.impl,
        )  # [B, H, Lq, E]
        b, h, lq, e = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, h * e))  # [B, Lq, D]
