"""Post-norm transformer encoder layer and stack, as in Informer/iTransformer's `EncoderLayer`.

x ← LN(x + Drop(Attn(x)));  x ← LN(x + Drop(W₂ Drop(act(W₁ x))))
The feed-forward is the position-wise "Conv1d(kernel 1)" of the official code, i.e. a Linear.
Shapes: B batch, T tokens, D width, F feed-forward width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from core.nn.attention import MultiHeadAttention
from core.nn.norm import LayerNorm

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"gelu": F.gelu, "relu": F.relu}


class TransformerEncoderLayer(nn.Module):
    """`attention` replaces the default full multi-head attention (e.g. Informer's ProbSparse); it is
    called as `attention(x, **attn_kwargs)` and must map [B, T, D] to [B, T, D]."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        activation: str = "gelu",
        impl: str = "auto",
        attention: nn.Module | None = None,
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.attn = attention if attention is not None else MultiHeadAttention(d_model, n_heads, dropout, impl)
        self.ff_in = nn.Linear(d_model, d_ff)
        self.ff_out = nn.Linear(d_ff, d_model)
        self.norm1 = LayerNorm(d_model, impl=impl)
        self.norm2 = LayerNorm(d_model, impl=impl)
        self.drop = nn.Dropout(dropout)
        self.act = _ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor, **attn_kwargs) -> torch.Tensor:  # [B, T, D] -> [B, T, D]
        """`attn_kwargs` go to the attention (MultiHeadAttention: attn_bias, causal, key_padding_mask)."""
        x = self.norm1(x + self.drop(self.attn(x, **attn_kwargs)))
        y = self.drop(self.ff_out(self.drop(self.act(self.ff_in(x)))))  # [B, T, D]
        return self.norm2(x + y)


class TransformerEncoder(nn.Module):
    """A stack of encoder layers followed by a final LayerNorm."""

    def __init__(self, layers: list[TransformerEncoderLayer], d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = LayerNorm(d_model)

    def forward(self, x: torch.Tensor, **attn_kwargs) -> torch.Tensor:  # [B, T, D] -> [B, T, D]
        for layer in self.layers:
            x = layer(x, **attn_kwargs)
        return self.norm(x)
