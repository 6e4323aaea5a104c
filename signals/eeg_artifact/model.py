"""ART, the Artifact Removal Transformer (Chuang et al., "ART: An Artifact Removal Transformer for
Reconstructing Noise-Free Multi-Channel EEG Signals", arXiv:2409.07326, 2024; official code
CNElab-Plus/ArtifactRemovalTransformer `model/tf_model.py`, read for the design, not copied).

The distinctive move: a token is one *time sample* of the whole montage. A 1×1 convolution (a Linear
over channels, `ExpandConv` in the official code) lifts the N channel values at each sample to a
D-vector, scaled by √D, and sine/cosine positions say where the sample sits in the window, so a 4 s
window at 256 Hz is 1,024 tokens and attention relates every instant of the window to every other
(millisecond-scale transients: blinks, muscle bursts). An encoder–decoder transformer (the Annotated
Transformer's pre-norm layers, 2 + 2) reads the noisy window twice: the encoder builds the memory,
the decoder (causal self-attention, then cross-attention to the memory) rebuilds the clean window,
and a Linear(D→N) reads the N channel values back off each token.

Deviations from the official code (see README.md): the decoder is fed the noisy window in training
and inference alike (the official code feeds the clean target in training and the noisy input at
inference), every sample is returned (the official output drops the last sample and appends a zero),
the window is z-scored inside the model and the output mapped back to the input's units (the
official code z-scores outside and never undoes it), and norms are `core` LayerNorms.

Legend: B batch, N channels, T samples = tokens, D model width, F feed-forward width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.nn import LayerNorm, MultiHeadAttention
from signals.eeg_artifact.config import ARTConfig


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """[T, D]: sin on even, cos on odd features, wavelengths 2π … 10000·2π (Vaswani et al. 2017)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # [T, 1]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)
    return pe


class ARTEmbedding(nn.Module):
    """Channels at each sample -> one token: 1×1 Conv1d(N→D) · √D + positions, then dropout."""

    def __init__(self, n_channels: int, d_model: int, window: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(n_channels, d_model, kernel_size=1)
        self.scale = math.sqrt(d_model)
        self.positions: torch.Tensor
        self.register_buffer("positions", sinusoidal_positions(window, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, T] -> [B, T, D]
        tokens = self.conv(x).transpose(1, 2) * self.scale  # [B, T, D]
        return self.drop(tokens + self.positions[: x.shape[-1]])


class ARTFeedForward(nn.Module):
    """W₂ Drop(act(W₁ x)), position-wise."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, activation: str):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff)
        self.w2 = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)
        self.act = F.relu if activation == "relu" else F.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, T, D]
        return self.w2(self.drop(self.act(self.w1(x))))


class ARTEncoderLayer(nn.Module):
    """Pre-norm: x ← x + Drop(Attn(LN(x)));  x ← x + Drop(FF(LN(x)))."""

    def __init__(self, c: ARTConfig):
        super().__init__()
        self.attn = MultiHeadAttention(c.d_model, c.n_heads, c.dropout, c.attn_impl)
        self.ff = ARTFeedForward(c.d_model, c.d_ff, c.dropout, c.activation)
        self.norm1 = LayerNorm(c.d_model, impl=c.attn_impl)
        self.norm2 = LayerNorm(c.d_model, impl=c.attn_impl)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, T, D]
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.ff(self.norm2(x)))


class ARTDecoderLayer(nn.Module):
    """Pre-norm: self-attention (causal by default), cross-attention to the encoder memory, feed-forward."""

    def __init__(self, c: ARTConfig):
        super().__init__()
        self.causal = c.decoder_causal
        self.self_attn = MultiHeadAttention(c.d_model, c.n_heads, c.dropout, c.attn_impl)
        self.cross_attn = MultiHeadAttention(c.d_model, c.n_heads, c.dropout, c.attn_impl)
        self.ff = ARTFeedForward(c.d_model, c.d_ff, c.dropout, c.activation)
        self.norms = nn.ModuleList(LayerNorm(c.d_model, impl=c.attn_impl) for _ in range(3))
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:  # [B, T, D], [B, T, D]
        x = x + self.drop(self.self_attn(self.norms[0](x), causal=self.causal))
        x = x + self.drop(self.cross_attn(self.norms[1](x), memory))
        return x + self.drop(self.ff(self.norms[2](x)))


class ART(nn.Module):
    """Noisy multichannel EEG windows x [B, N, T] -> clean x [B, N, T], in the units of x."""

    def __init__(self, config: ARTConfig):
        super().__init__()
        self.config = c = config
        self.src_embed = ARTEmbedding(c.n_channels, c.d_model, c.window, c.dropout)
        self.tgt_embed = ARTEmbedding(c.n_channels, c.d_model, c.window, c.dropout)
        self.encoder = nn.ModuleList(ARTEncoderLayer(c) for _ in range(c.e_layers))
        self.encoder_norm = LayerNorm(c.d_model, impl=c.attn_impl)
        self.decoder = nn.ModuleList(ARTDecoderLayer(c) for _ in range(c.d_layers))
        self.decoder_norm = LayerNorm(c.d_model, impl=c.attn_impl)
        self.generator = nn.Linear(c.d_model, c.n_channels)  # the official `Generator` (no softmax)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Glorot-uniform on every matrix, as the official `make_model` does; norms keep ones/zeros.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    @property
    def spectral_weight(self) -> float:
        """Weight of the log-spectrum term the denoise objective adds to the MSE (0: MSE only)."""
        return self.config.spectral_weight

    def check_input(self, x: torch.Tensor) -> None:
        c = self.config
        if x.dim() != 3 or x.shape[1] != c.n_channels or not 1 <= x.shape[2] <= c.window:
            raise ValueError(
                f"expected x [B, {c.n_channels}, T] with 1 <= T <= {c.window} (channels × samples), got {list(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, T] -> [B, N, T]
        self.check_input(x)
        # Each window z-scored by its own mean and std over all channels (the official preprocessing,
        # which keeps the channels' relative amplitudes), and the output mapped back to x's units.
        mean = x.mean(dim=(1, 2), keepdim=True)  # [B, 1, 1]
        std = torch.sqrt(x.var(dim=(1, 2), keepdim=True, unbiased=False) + 1e-8)  # [B, 1, 1]
        z = (x - mean) / std  # [B, N, T]
        memory = self.src_embed(z)  # [B, T, D]
        for layer in self.encoder:
            memory = layer(memory)
        memory = self.encoder_norm(memory)
        h = self.tgt_embed(z)  # [B, T, D]: the decoder reads the noisy window too (see module docstring)
        for dec in self.decoder:
            h = dec(h, memory)
        y = self.generator(self.decoder_norm(h)).transpose(1, 2)  # [B, T, N] -> [B, N, T]
        return y * std + mean
