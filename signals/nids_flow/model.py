"""FlowTransformer (Manocchio, Layeghy, Lo, Kulatilleke, Sarhan, Portmann, 2023, arXiv:2304.14746;
official code liamdm/FlowTransformer, Keras), re-built in PyTorch on Seer's `core.nn` blocks.

A window is the target flow and the W-1 flows recorded before it, in file order; the model labels the
target (the last flow). FlowTransformer is a framework rather than one net, and the three choices it
studies are config fields here:

  input encoding  `record`: one embedding per flow, Linear over [numeric ‖ one-hot(categorical)]
                  (the official `RecordLevelEmbed`); `categorical`: each categorical feature gets its
                  own small lookup embedding, concatenated with the numeric values, then projected
                  (`CategoricalFeatureEmbed(Lookup)`).
  block           `encoder`: bidirectional self-attention; `causal`: GPT-style self-attention where
                  flow t attends to flows <= t only (a real causal mask, which the official "GPT"
                  block lacks).
  head            `last` token, `cls` (a learned token appended after the last flow, read out),
                  `gap` (global average pooling over the flows), `flatten` (all W tokens).

No positional encoding by default, as in the official code. The `last` head needs none: the target is
the query at the last position. The CLS token and global average pooling then see the window as a set
of flows and cannot tell which one is the target (an encoder block is permutation-equivariant; a
causal block leaks order only through its masks); `positional=True` adds a learned embedding per slot.

Fixed against the official code: its encoder block normalises `attention_output + ffn_output` and so
drops the input residual; here the post-norm layer of `core.nn` keeps both residuals. Unseen
categorical values get their own code 0 ("other") in the data's transform instead of colliding with
the most frequent value.

Windows may be left-padded (the first flows of a split or of a request have fewer predecessors):
`pad_mask` marks the missing flows, which are zeroed, never attended to and left out of pooling.

Legend: B batch, W flows per window, F = Nn + Nc features per flow (Nn numeric values then Nc
categorical codes), T tokens (W, or W + 1 with a CLS token), D width, K classes, V levels per feature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.nn import TransformerEncoder, TransformerEncoderLayer
from signals.nids_flow.config import FlowTransformerConfig


class FlowTransformerEmbedding(nn.Module):
    """flows [B, W, F] -> tokens [B, W, D], by the configured input encoding.

    Categorical features share one table with a row offset per feature (feature i, code c -> row
    i·V + c), so a lookup is one gather. For `record` the table has D columns and the lookup-sum is
    exactly `Linear([numeric ‖ one-hot])` (one-hot @ W picks a row of W); for `categorical` it has
    `embed_dim` columns and the looked-up vectors are concatenated with the numeric values."""

    offsets: torch.Tensor

    def __init__(self, c: FlowTransformerConfig):
        super().__init__()
        self.n_numeric, self.n_categorical, self.n_levels = c.n_numeric, c.n_categorical, c.n_levels
        self.encoding = c.encoding
        offsets = torch.arange(c.n_categorical) * c.n_levels  # [Nc]
        self.register_buffer("offsets", offsets, persistent=False)
        if c.encoding == "record":
            self.numeric = nn.Linear(c.n_numeric, c.d_model) if c.n_numeric else None
            self.bias = None if c.n_numeric else nn.Parameter(torch.zeros(c.d_model))
            self.table = nn.Embedding(c.n_categorical * c.n_levels, c.d_model) if c.n_categorical else None
            if self.table is not None:  # scaled like a Linear over the one-hot inputs
                nn.init.uniform_(self.table.weight, -1.0 / c.n_features**0.5, 1.0 / c.n_features**0.5)
        else:
            self.table = nn.Embedding(c.n_categorical * c.n_levels, c.embed_dim) if c.n_categorical else None
            self.project = nn.Linear(c.n_numeric + c.n_categorical * c.embed_dim, c.d_model)

    def forward(self, flows: torch.Tensor) -> torch.Tensor:
        b, w, _ = flows.shape
        numeric = flows[..., : self.n_numeric]  # [B, W, Nn]
        codes = flows[..., self.n_numeric :].long() + self.offsets  # [B, W, Nc]: rows of the shared table
        if self.encoding == "record":
            if self.numeric is not None:
                out = self.numeric(numeric)  # [B, W, D]
            else:
                assert self.bias is not None
                out = self.bias.expand(b, w, -1)
            if self.table is None:
                return out
            # The sum of each flow's Nc rows in one pass (embedding_bag), not Nc·D values per flow gathered
            # and then summed: the gather was the model's largest cost on CPU (profiled, batch 8192).
            rows = F.embedding_bag(codes.reshape(b * w, -1), self.table.weight, mode="sum")  # [B·W, D]
            return out + rows.view(b, w, -1)  # [B, W, D]
        if self.table is not None:
            rows = self.table(codes)  # [B, W, Nc, E]
            numeric = torch.cat([numeric, rows.flatten(2)], dim=-1)  # [B, W, Nn + Nc·E]
        return self.project(numeric)  # [B, W, D]


class FlowTransformer(nn.Module):
    def __init__(self, config: FlowTransformerConfig):
        super().__init__()
        self.config = c = config
        self.embed = FlowTransformerEmbedding(c)
        self.cls_token = nn.Parameter(torch.randn(1, 1, c.d_model) * 0.02) if c.head == "cls" else None
        tokens = c.window + (c.head == "cls")
        self.position = nn.Parameter(torch.randn(1, tokens, c.d_model) * 0.02) if c.positional else None
        self.blocks = TransformerEncoder(
            [
                TransformerEncoderLayer(c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation, impl=c.attn_impl)
                for _ in range(c.n_layers)
            ],
            c.d_model,
        )
        width = c.d_model * c.window if c.head == "flatten" else c.d_model
        layers: list[nn.Module] = []
        for size in c.mlp:  # the official classifier: Dense(relu) + Dropout per hidden size, then the output
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(c.mlp_dropout)]
            width = size
        layers.append(nn.Linear(width, c.n_classes))
        self.classifier = nn.Sequential(*layers)

    def _check(self, flows: torch.Tensor, pad_mask: torch.Tensor | None) -> None:
        c = self.config
        if flows.dim() != 3 or flows.shape[1] != c.window or flows.shape[2] != c.n_features:
            raise ValueError(
                f"expected flows of shape [B, {c.window}, {c.n_features}] (window × {c.n_numeric} numeric + "
                f"{c.n_categorical} categorical features), got {tuple(flows.shape)}"
            )
        if c.n_categorical:
            codes = flows[..., c.n_numeric :]
            if bool(((codes < 0) | (codes >= c.n_levels) | (codes != codes.round())).any()):
                raise ValueError(f"expected categorical codes as integers in [0, {c.n_levels}) after the numeric ones")
        if pad_mask is not None:
            if pad_mask.shape != flows.shape[:2] or pad_mask.dtype != torch.bool:
                raise ValueError(f"expected pad_mask of shape [B, {c.window}] (bool), got {tuple(pad_mask.shape)}")
            if bool(pad_mask[:, -1].any()):
                raise ValueError("pad_mask marks the target (last) flow as missing; only earlier flows may be padding")

    def forward(self, flows: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """flows [B, W, F] (target flow last), pad_mask [B, W] (True = no flow there) -> logits [B, K]."""
        self._check(flows, pad_mask)
        c = self.config
        tokens = self.embed(flows)  # [B, W, D]
        if pad_mask is not None and not bool(pad_mask.any()):
            pad_mask = None  # nothing padded: the attention op's unmasked path is the faster one
        if pad_mask is not None:
            tokens = tokens.masked_fill(pad_mask[..., None], 0.0)
        if self.cls_token is not None:  # appended after the target, so a causal block lets it see every flow
            tokens = torch.cat([tokens, self.cls_token.expand(tokens.shape[0], 1, -1)], dim=1)  # [B, W+1, D]
            if pad_mask is not None:
                pad_mask = torch.cat([pad_mask, pad_mask.new_zeros(pad_mask.shape[0], 1)], dim=1)  # [B, W+1]
        if self.position is not None:
            tokens = tokens + self.position  # [B, T, D]
        h = self._blocks(tokens, c.block == "causal", pad_mask)  # [B, T, D], or [B, 1, D] for last/cls
        return self.classifier(self._pool(h, pad_mask))  # [B, K]

    def _blocks(self, x: torch.Tensor, causal: bool, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """The block stack. The `last` and `cls` heads read one token, so the last layer runs for that query
        only (its keys and values are still every token; with a causal mask the last query sees them all):
        the same numbers as the whole stack's last token (`test_the_last_layer_runs_for_the_read_out_token_
        only`), for a third fewer multiply-adds in the blocks (counted at the default size: 346k instead of
        512k per window)."""
        layers = self.blocks.layers
        if self.config.head not in ("last", "cls"):
            return self.blocks(x, causal=causal, key_padding_mask=pad_mask)
        for layer in layers[:-1]:
            x = layer(x, causal=causal, key_padding_mask=pad_mask)  # [B, T, D]
        last = layers[-1]  # core.nn.TransformerEncoderLayer's post-norm step, for the last query
        assert isinstance(last, TransformerEncoderLayer)
        q = x[:, -1:]  # [B, 1, D]
        q = last.norm1(q + last.drop(last.attn(q, x, causal=causal, key_padding_mask=pad_mask)))
        q = last.norm2(q + last.drop(last.ff_out(last.drop(last.act(last.ff_in(q))))))
        return self.blocks.norm(q)  # [B, 1, D]

    def _pool(self, h: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """The head: [B, T, D] -> [B, D] (or [B, W·D] for `flatten`)."""
        head = self.config.head
        if head in ("last", "cls"):
            return h[:, -1]  # the target flow's token, or the CLS token after it
        if pad_mask is not None:
            h = h.masked_fill(pad_mask[..., None], 0.0)  # padded positions count for nothing
        if head == "flatten":
            return h.flatten(1)  # [B, W·D]
        valid = h.new_ones(h.shape[:2]) if pad_mask is None else (~pad_mask).to(h.dtype)  # [B, W]
        return h.sum(dim=1) / valid.sum(dim=1, keepdim=True)  # [B, D]: mean over the flows present
