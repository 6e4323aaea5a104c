"""Informer (Zhou et al., AAAI 2021; official code zhouhaoyi/Informer2020 `models/`).

Encoder: ProbSparse self-attention layers with self-attention distilling between them
(Conv1d k3 circular → BatchNorm → ELU → MaxPool k3 s2 p1: 96 → 48 → 24 tokens). Decoder ("generative
style"): its input is the last `label_len` known steps followed by zeros for the horizon, with the
calendar features of all of them; masked ProbSparse self-attention, full cross-attention to the
encoder, and one forward pass yields the whole horizon. Embedding = Conv1d token embedding (k3,
circular) + sinusoidal position + linear calendar ("timeF") embedding.

Legend: B batch, L lookback, S = label_len, H horizon, N variates, F calendar features, D width.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from core.nn import LayerNorm, MultiHeadAttention, ProbSparseAttention, TransformerEncoderLayer
from forecasters.informer.config import InformerConfig

_ACT: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"gelu": F.gelu, "relu": F.relu}


def sinusoid(length: int, d_model: int, device: torch.device | None = None) -> torch.Tensor:
    """[length, D] sine/cosine position table (Vaswani et al.), as the official PositionalEmbedding."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * -(math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model, device=device)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
    return table


class InformerEmbedding(nn.Module):
    """value (Conv1d k3 circular) + position (sinusoid) + calendar (Linear F→D), then dropout."""

    def __init__(self, n_variates: int, n_marks: int, d_model: int, dropout: float):
        super().__init__()
        self.value = nn.Conv1d(n_variates, d_model, kernel_size=3, padding=1, padding_mode="circular")
        nn.init.kaiming_normal_(self.value.weight, mode="fan_in", nonlinearity="leaky_relu")
        self.calendar = nn.Linear(n_marks, d_model) if n_marks else None
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, marks: torch.Tensor | None) -> torch.Tensor:  # [B, T, N] -> [B, T, D]
        out = self.value(x.transpose(1, 2)).transpose(1, 2)
        out = out + sinusoid(x.shape[1], out.shape[-1], x.device).to(out.dtype)
        if self.calendar is not None and marks is not None:
            out = out + self.calendar(marks)
        return self.drop(out)


class DistillingLayer(nn.Module):
    """Self-attention distilling: Conv1d(k3, circular) → BatchNorm → ELU → MaxPool(k3, s2, p1)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=3, padding=1, padding_mode="circular")
        self.norm = nn.BatchNorm1d(d_model)
        self.pool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, ⌊(T−1)/2⌋+1, D]
        y = F.elu(self.norm(self.conv(x.transpose(1, 2))))
        return self.pool(y).transpose(1, 2)


class InformerDecoderLayer(nn.Module):
    """Post-norm: masked self-attention, cross-attention to the encoder, position-wise feed-forward."""

    def __init__(self, c: InformerConfig, layer: int):
        super().__init__()
        self.self_attn: nn.Module = (
            ProbSparseAttention(
                c.d_model, c.n_heads, c.factor, mix=c.mix, sample_seed=c.sample_seed + 100 + layer, impl=c.attn_impl
            )
            if c.attn == "prob"
            else MultiHeadAttention(c.d_model, c.n_heads, c.dropout, c.attn_impl)
        )
        self.cross_attn = MultiHeadAttention(c.d_model, c.n_heads, c.dropout, c.attn_impl)
        self.ff_in = nn.Linear(c.d_model, c.d_ff)
        self.ff_out = nn.Linear(c.d_ff, c.d_model)
        self.norms = nn.ModuleList([LayerNorm(c.d_model, impl=c.attn_impl) for _ in range(3)])
        self.drop = nn.Dropout(c.dropout)
        self.act = _ACT[c.activation]

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:  # [B, T, D], [B, T_enc, D]
        x = self.norms[0](x + self.drop(self.self_attn(x, causal=True)))
        x = self.norms[1](x + self.drop(self.cross_attn(x, memory)))
        y = self.drop(self.ff_out(self.drop(self.act(self.ff_in(x)))))
        return self.norms[2](x + y)


class Informer(nn.Module):
    def __init__(self, config: InformerConfig):
        super().__init__()
        self.config = c = config
        self.enc_embed = InformerEmbedding(c.n_variates, c.n_marks, c.d_model, c.dropout)
        self.dec_embed = InformerEmbedding(c.n_variates, c.n_marks, c.d_model, c.dropout)
        self.encoder = nn.ModuleList(
            [
                TransformerEncoderLayer(
                    c.d_model,
                    c.n_heads,
                    c.d_ff,
                    c.dropout,
                    c.activation,
                    impl=c.attn_impl,
                    attention=self._self_attention(c, layer),
                )
                for layer in range(c.e_layers)
            ]
        )
        self.distil = nn.ModuleList([DistillingLayer(c.d_model) for _ in range(c.e_layers - 1)] if c.distil else [])
        self.enc_norm = LayerNorm(c.d_model, impl=c.attn_impl)
        self.decoder = nn.ModuleList([InformerDecoderLayer(c, layer) for layer in range(c.d_layers)])
        self.dec_norm = LayerNorm(c.d_model, impl=c.attn_impl)
        self.project = nn.Linear(c.d_model, c.n_variates)

    @staticmethod
    def _self_attention(c: InformerConfig, layer: int) -> nn.Module | None:
        if c.attn == "full":
            return None  # the encoder layer's default full multi-head attention
        return ProbSparseAttention(
            c.d_model, c.n_heads, c.factor, mix=c.mix_encoder, sample_seed=c.sample_seed + layer, impl=c.attn_impl
        )

    @property
    def uses_timestamps(self) -> bool:
        """Calendar features of the lookback *and* of the horizon feed the model."""
        return self.config.n_marks > 0

    def encode(self, x: torch.Tensor, x_mark: torch.Tensor | None) -> torch.Tensor:
        """[B, L, N] -> encoder memory [B, L / 2^(e_layers−1), D] (with distilling)."""
        h = self.enc_embed(x, x_mark)
        for i, layer in enumerate(self.encoder):
            h = layer(h)
            if i < len(self.distil):
                h = self.distil[i](h)
        return self.enc_norm(h)

    def forward(
        self, x: torch.Tensor, x_mark: torch.Tensor | None = None, y_mark: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B, L, N] (scaled), x_mark [B, L, F], y_mark [B, H, F] (the horizon's calendar) -> [B, H, N]."""
        c = self.config
        if x.dim() != 3 or x.shape[1] != c.lookback or x.shape[2] != c.n_variates:
            raise ValueError(f"expected x of shape [B, {c.lookback}, {c.n_variates}], got {tuple(x.shape)}")
        b = x.shape[0]
        dec_mark = None
        if c.n_marks:
            for name, t, steps in (("x_mark", x_mark, c.lookback), ("y_mark", y_mark, c.horizon)):
                if t is None or t.shape != (b, steps, c.n_marks):
                    got = None if t is None else tuple(t.shape)
                    raise ValueError(f"expected {name} of shape [B, {steps}, {c.n_marks}], got {got}")
            assert x_mark is not None and y_mark is not None
            dec_mark = torch.cat([x_mark[:, c.lookback - c.label_len :], y_mark], dim=1)  # [B, S+H, F]
        else:
            x_mark = None
        memory = self.encode(x, x_mark)
        dec_in = torch.cat([x[:, c.lookback - c.label_len :], x.new_zeros(b, c.horizon, c.n_variates)], dim=1)
        h = self.dec_embed(dec_in, dec_mark)  # [B, S+H, D]
        for layer in self.decoder:
            h = layer(h, memory)
        return self.project(self.dec_norm(h))[:, -c.horizon :]  # [B, H, N]
