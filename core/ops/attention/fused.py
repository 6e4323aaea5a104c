"""Attention through `torch.nn.functional.scaled_dot_product_attention` (SDPA): the fused PyTorch route.

On CPU, SDPA's flash kernel is several times faster than the reference's two matmuls and softmax (it
never materialises the whole score matrix), and it also serves calls the Triton kernel does not take on
CUDA (dropout). It must give the reference's answer (`reference.py`, the spec), so the spec's features are
mapped onto SDPA's arguments:

- `causal` is bottom-right aligned in the spec (query i sees keys j <= i + Lk - Lq); SDPA's `is_causal` is
  top-left aligned, so it is used only when Lq == Lk (where the two agree) and nothing else masks; other
  causal calls pass an explicit boolean mask.
- `key_padding_mask` [B, Lk] (True = padded) becomes a boolean "may attend" mask [B, 1, 1, Lk].
- `bias` becomes a float mask, with -inf where a boolean mask forbids; a query row whose every key is
  masked gives zeros (as the spec says) in the torch this project pins, which the parity tests check.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.ops.attention.reference import check_inputs


def fused_unsupported(q: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor | None) -> str | None:
    """Why SDPA cannot give the spec's answer for this call, or None when it can."""
    if q.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        return f"dtype {q.dtype}"
    if bias is not None and q.dtype in (torch.float16, torch.bfloat16):
        return f"a float bias with {q.dtype} inputs: SDPA would round the bias to {q.dtype} (the spec adds it in fp32)"
    if mask is not None and q.device.type != "cpu" and bool(mask.all(-1).any()):
        return "a fully padded row off the CPU: SDPA's GPU back ends may give NaN where the spec gives zeros"
    return None


def attention_fused(
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
    """`softmax(q kᵀ·scale + bias) v` over `[B, H, L, D]` inputs by SDPA; same contract as the reference."""
    check_inputs(q, k, v, key_padding_mask)
    lq, lk = q.shape[-2], k.shape[-2]
    if causal and lq == lk and bias is None and key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, scale=scale)

    keep = None  # True where a query may attend to a key
    if causal:
        i = torch.arange(lq, device=q.device)[:, None]
        keep = torch.arange(lk, device=q.device)[None, :] <= i + (lk - lq)  # [Lq, Lk]
    if key_padding_mask is not None:
        present = ~key_padding_mask.bool()[:, None, None, :]  # [B, 1, 1, Lk]
        keep = present if keep is None else (keep & present)
    mask: torch.Tensor | None = keep
    if bias is not None:
        mask = bias.to(q.dtype) if keep is None else bias.to(q.dtype).masked_fill(~keep, float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
