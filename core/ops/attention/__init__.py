"""Fused scaled-dot-product attention with additive bias, causal and key-padding masks.

Public op: `attention(q, k, v, ...)`. The reference (`reference.py`) is the spec; a Triton kernel
registers itself with the dispatcher when it exists (issue: kernel-accelerated core).
"""

from __future__ import annotations

import torch

from core.ops.attention.reference import attention_reference
from core.ops.dispatch import resolve_impl


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    causal: bool = False,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """`softmax(q kᵀ·scale + bias) v` over `[B, H, L, D]` inputs; see `attention_reference`."""
    chosen = resolve_impl("attention", q.device, impl)
    if chosen == "triton":  # pragma: no cover - only reachable once a kernel is registered
        from core.ops.attention.triton import attention_triton

        return attention_triton(
            q, k, v, bias=bias, causal=causal, key_padding_mask=key_padding_mask, dropout_p=dropout_p, scale=scale
        )
    return attention_reference(
        q, k, v, bias=bias, causal=causal, key_padding_mask=key_padding_mask, dropout_p=dropout_p, scale=scale
    )


__all__ = ["attention", "attention_reference"]
