"""ProbSparse attention (Informer): query-sparsity measurement, top-u selection, sparse attention.

Public op: `probsparse_attention(q, k, v, factor=, causal=, index=, generator=, scale=, impl=)`.
`reference.py` is the spec; the Triton kernels (`triton.py`: the sampled max−mean measurement, and the
attention of the selected queries written straight into the lazy context, forward and backward)
register with the dispatcher when the triton package is installed and run on CUDA (or under
`TRITON_INTERPRET=1` when `impl="triton"` is explicit). Top-u selection is `torch.topk` in both paths.

Calls the kernels do not cover (head dims past 128, dtypes other than fp32/fp16/bf16) are named by
`_unsupported` and passed to the dispatcher (`resolve_impl(..., unsupported=)`), whose rule applies: `auto`
uses the reference with one log line per reason, an explicit `triton` raises `KernelUnavailableError`.
"""

from __future__ import annotations

import importlib.util

import torch

from core.ops.dispatch import register_triton, resolve_impl
from core.ops.probsparse.reference import (
    _check,
    lazy_context,
    n_sampled,
    probsparse_attention_reference,
    query_sparsity,
    sample_keys,
    select_queries,
    sparse_attention_reference,
)

# find_spec, not `import triton`: see core/ops/attention/__init__.py for why triton is imported lazily.
if importlib.util.find_spec("triton") is not None:
    register_triton("probsparse")

_MAX_HEAD_DIM = 128  # the Triton kernels' tiles stop here (mirrors core/ops/probsparse/triton.py)


def _unsupported(q: torch.Tensor, v: torch.Tensor) -> str | None:
    """Why the Triton kernels cannot take this call, or None when they can."""
    if max(q.shape[-1], v.shape[-1]) > _MAX_HEAD_DIM:
        return f"head dim {max(q.shape[-1], v.shape[-1])} > {_MAX_HEAD_DIM}: the Triton kernels' tiles stop at 128"
    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return f"dtype {q.dtype}: the Triton kernels take fp32, fp16 and bf16"
    return None


def probsparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    factor: int = 5,
    causal: bool = False,
    index: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    scale: float | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """ProbSparse attention over `[B, H, L, D]` inputs -> `[B, H, Lq, Dv]`; see the reference module."""
    if resolve_impl("probsparse", q.device, impl, unsupported=_unsupported(q, v)) == "triton":
        from core.ops.probsparse.triton import probsparse_attention_triton

        _check(q, k, v, causal)
        if index is None:
            index = sample_keys(q.shape[-2], k.shape[-2], factor, generator=generator, device=q.device)
        return probsparse_attention_triton(q, k, v, index, factor=factor, causal=causal, scale=scale)
    return probsparse_attention_reference(
        q, k, v, factor=factor, causal=causal, index=index, generator=generator, scale=scale
    )


__all__ = [
    "probsparse_attention",
    "probsparse_attention_reference",
    "sparse_attention_reference",
    "query_sparsity",
    "select_queries",
    "sample_keys",
    "lazy_context",
    "n_sampled",
]
