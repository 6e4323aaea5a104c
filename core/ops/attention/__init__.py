"""Fused scaled-dot-product attention with additive bias, causal and key-padding masks.

Public op: `attention(q, k, v, ...)`. The reference (`reference.py`) is the spec; the Triton flash-attention
kernel (`triton.py`) registers itself with the dispatcher when the triton package is installed, and the
fused PyTorch route (`fused.py`: SDPA) always: `auto` runs Triton on CUDA, SDPA where Triton cannot run
(on CPU, or a call the kernel does not cover) and SDPA supports the call, the reference otherwise.

Registration looks triton up with `find_spec` instead of importing it: `import triton` fixes whether
triton.language's own helpers are interpreted (TRITON_INTERPRET) for the whole process, so importing it
as a side effect of `import core` would lock the interpreter tests out. The kernel module itself is
imported on the first call that runs it.

Calls the kernel does not cover (dropout, head dims past 128, dtypes other than fp32/fp16/bf16) are named
by `_unsupported` and passed to the dispatcher (`resolve_impl(..., unsupported=)`), whose rule applies:
`auto` uses the reference with one log line per reason, an explicit `triton` raises `KernelUnavailableError`.
"""

from __future__ import annotations

import importlib.util

import torch

from core.ops.attention.fused import attention_fused, fused_unsupported
from core.ops.attention.reference import attention_reference
from core.ops.dispatch import register_fused, register_triton, resolve_impl

# Mirrors MAX_HEAD_DIM in triton.py; kept here so dispatch never imports triton to decide.
_MAX_HEAD_DIM = 128

if importlib.util.find_spec("triton") is not None:
    register_triton("attention")
register_fused("attention")


def _unsupported(q: torch.Tensor, v: torch.Tensor, dropout_p: float) -> str | None:
    """Why the Triton kernel cannot take this call, or None when it can."""
    if dropout_p > 0.0:
        return f"dropout_p={dropout_p}: the Triton kernel has no dropout"
    if max(q.shape[-1], v.shape[-1]) > _MAX_HEAD_DIM:
        return f"head dim {max(q.shape[-1], v.shape[-1])} > {_MAX_HEAD_DIM}: the Triton kernel's tiles stop at 128"
    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return f"dtype {q.dtype}: the Triton kernel takes fp32, fp16 and bf16"
    return None


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
    chosen = resolve_impl(
        "attention",
        q.device,
        impl,
        unsupported=_unsupported(q, v, dropout_p),
        fused_unsupported=lambda: fused_unsupported(q, bias, key_padding_mask),
    )
    run = attention_reference
    if chosen == "triton":
        from core.ops.attention.triton import attention_triton

        run = attention_triton
    elif chosen == "fused":
        run = attention_fused
    return run(q, k, v, bias=bias, causal=causal, key_padding_mask=key_padding_mask, dropout_p=dropout_p, scale=scale)


__all__ = ["attention", "attention_fused", "attention_reference"]
