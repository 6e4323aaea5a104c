"""Reference attention in plain PyTorch: the specification every kernel is tested against.

Shapes: B batch, H heads, Lq query length, Lk key length, D head dim.
  q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv]
  bias: additive, broadcastable to [B, H, Lq, Lk] (e.g. [1, H, Lq, Lk] or [B, 1, Lq, Lk])
  key_padding_mask: [B, Lk] bool, True marks a padded key that no query may attend to
  causal: query i sees keys j <= i + (Lk - Lq) (bottom-right aligned, as in FlashAttention)
Softmax runs in fp32 whatever the input dtype. A query row whose keys are all masked outputs zeros
(not NaN), so padded rows never poison gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def check_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None = None
) -> None:
    """The shapes every implementation of the op accepts (ValueError naming what is wrong otherwise)."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"attention expects [B, H, L, D] tensors, got {tuple(q.shape)}, {tuple(k.shape)}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"incompatible q/k/v shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if key_padding_mask is not None and key_padding_mask.shape != (q.shape[0], k.shape[-2]):
        want = (q.shape[0], k.shape[-2])
        raise ValueError(f"key_padding_mask must be [B, Lk] = {want}, got {tuple(key_padding_mask.shape)}")


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    causal: bool = False,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    check_inputs(q, k, v, key_padding_mask)
    lq, lk = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale

    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale  # [B, H, Lq, Lk]
    if bias is not None:
        scores = scores + bias.float()

    masked = None  # True where a score must not count
    if causal:
        i = torch.arange(lq, device=q.device)[:, None]
        j = torch.arange(lk, device=q.device)[None, :]
        masked = j > i + (lk - lq)  # [Lq, Lk]
    if key_padding_mask is not None:
        pad = key_padding_mask.bool()[:, None, None, :]  # [B, 1, 1, Lk]
        masked = pad if masked is None else (masked | pad)

    if masked is not None:
        scores = scores.masked_fill(masked, float("-inf"))
        row_max = scores.amax(dim=-1, keepdim=True)
        # A fully masked row has max -inf; shift it by 0 instead so exp() gives exact zeros.
        row_max = torch.where(torch.isinf(row_max), torch.zeros_like(row_max), row_max)
        p = torch.exp(scores - row_max)  # masked entries: exp(-inf) = 0
        denom = p.sum(dim=-1, keepdim=True)
        p = p / torch.where(denom == 0, torch.ones_like(denom), denom)
    else:
        p = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        p = F.dropout(p, p=dropout_p)
    return torch.matmul(p, v.float()).to(q.dtype)  # [B, H, Lq, Dv]
