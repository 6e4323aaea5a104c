"""iTransformer (Liu et al., ICLR 2024; official code thuml/iTransformer `model/iTransformer.py`).

The transformer is "inverted": a token is one whole variate (its L lookback values embedded by one
Linear(L→D)), so attention mixes information *across variates* and the feed-forward learns each
variate's temporal representation. Calendar features are embedded the same way, one token per
feature, and attended to but not forecast. A Linear(D→H) reads the horizon off each variate token.

Legend: B batch, L lookback, H horizon, N variates, F calendar features, T = N + F tokens, D width.
"""

from __future__ import annotations

import torch
from torch import nn

from core.nn import SeriesNorm, TransformerEncoder, TransformerEncoderLayer
from forecasters.itransformer.config import ITransformerConfig


class ITransformerEmbedding(nn.Module):
    """Inverted embedding: each series of L steps (variate or calendar feature) -> one D-vector."""

    def __init__(self, lookback: int, d_model: int, dropout: float):
        super().__init__()
        self.value = nn.Linear(lookback, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None) -> torch.Tensor:
        series = x if x_mark is None else torch.cat([x, x_mark], dim=2)  # [B, L, T]
        return self.drop(self.value(series.transpose(1, 2)))  # [B, T, D]


class ITransformer(nn.Module):
    def __init__(self, config: ITransformerConfig):
        super().__init__()
        self.config = config
        c = config
        self.norm = SeriesNorm()
        self.embed = ITransformerEmbedding(c.lookback, c.d_model, c.dropout)
        self.encoder = TransformerEncoder(
            [
                TransformerEncoderLayer(c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation, impl=c.attn_impl)
                for _ in range(c.e_layers)
            ],
            c.d_model,
        )
        self.project = nn.Linear(c.d_model, c.horizon)

    @property
    def uses_timestamps(self) -> bool:
        """The model reads calendar features, so callers must send timestamps."""
        return self.config.n_marks > 0

    def forward(
        self, x: torch.Tensor, x_mark: torch.Tensor | None = None, y_mark: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B, L, N] (scaled), x_mark [B, L, F] -> forecast [B, H, N] in the units of x.

        `y_mark` (the horizon's calendar, which decoder models read) is accepted and not used."""
        c = self.config
        if x.dim() != 3 or x.shape[1] != c.lookback or x.shape[2] != c.n_variates:
            raise ValueError(f"expected x of shape [B, {c.lookback}, {c.n_variates}], got {tuple(x.shape)}")
        if c.n_marks:
            if x_mark is None or x_mark.shape != (x.shape[0], c.lookback, c.n_marks):
                got = None if x_mark is None else tuple(x_mark.shape)
                raise ValueError(f"expected x_mark of shape [B, {c.lookback}, {c.n_marks}], got {got}")
        else:
            x_mark = None
        if c.use_norm:
            x, stats = self.norm.normalize(x)  # [B, L, N]
        tokens = self.embed(x, x_mark)  # [B, N+F, D]
        tokens = self.encoder(tokens)  # [B, N+F, D]
        y = self.project(tokens).transpose(1, 2)[:, :, : c.n_variates]  # [B, H, N]: calendar tokens dropped
        if c.use_norm:
            y = self.norm.denormalize(y, stats)
        return y
