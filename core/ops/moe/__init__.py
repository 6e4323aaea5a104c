"""Mixture-of-experts feed-forward: top-k routing and the SwiGLU expert computation, for Moirai-MoE.

Public ops:
- `route_topk(logits [T, E], k) -> (indices [T, k] int64, weights [T, k])`: the k largest logits per token,
  weights = softmax over those k logits (they sum to 1 per token).
- `moe_swiglu(x [T, D], indices, weights, w_gate [E, D, F], w_up [E, D, F], w_down [E, F, D], *, impl)`:
  y[t] = Σ_j weights[t, j] · ((silu(x[t] W_gate[e]) * (x[t] W_up[e])) W_down[e]), e = indices[t, j];
  differentiable w.r.t. x, weights and the three expert weight tensors.

The reference (`reference.py`, a loop over experts) is the spec. The Triton path (`triton.py`: token
permutation, two grouped GEMMs with a fused SwiGLU, weighted un-permute, and a Triton backward) registers
with the dispatcher when the triton package is installed; `auto` uses it on CUDA only. Registration looks
triton up with `find_spec` and the kernel module is imported on the first call that runs it (see
`core.ops.attention` for why `import triton` must not happen as a side effect of `import core`).

Calls the kernel does not cover (dtypes other than fp32/fp16/bf16; x and the expert weights in different
dtypes outside autocast) are named by `_unsupported` and passed to the dispatcher (`resolve_impl(...,
unsupported=)`), whose rule applies: `auto` uses the reference with one log line per reason, an explicit
`triton` raises `KernelUnavailableError`.
"""

from __future__ import annotations

import importlib.util

import torch

from core.ops.dispatch import register_triton, resolve_impl
from core.ops.moe.reference import check_moe_args, moe_swiglu_reference, route_topk

_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

if importlib.util.find_spec("triton") is not None:
    register_triton("moe")


def _unsupported(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> str | None:
    """Why the Triton kernels cannot take this call, or None when they can."""
    if x.dtype not in _KERNEL_DTYPES:
        return f"dtype {x.dtype}: the Triton kernels take fp32, fp16 and bf16"
    if not x.dtype == w_gate.dtype == w_up.dtype == w_down.dtype:
        return f"x ({x.dtype}) and expert weights ({w_gate.dtype}, {w_up.dtype}, {w_down.dtype}) differ in dtype"
    return None


def moe_swiglu(
    x: torch.Tensor,
    indices: torch.Tensor,
    weights: torch.Tensor,
    w_gate: torch.Tensor,
    w_up: torch.Tensor,
    w_down: torch.Tensor,
    *,
    impl: str | None = None,
) -> torch.Tensor:
    """Top-k mixture of SwiGLU experts: x [T, D] -> y [T, D] in x's dtype; see `moe_swiglu_reference`.

    indices [T, k] (int64/int32, values in [0, E)) and weights [T, k] usually come from `route_topk`;
    w_gate, w_up [E, D, F] and w_down [E, F, D] are the experts' weights (no biases). `impl`:
    auto | triton | reference (default: `SEER_KERNELS`, else auto = Triton on CUDA, reference elsewhere).
    Under `torch.autocast` for x's device, x and the expert weights are cast to the autocast dtype first (the
    op is three matmuls, which autocast runs in low precision), so fp32 parameters with bf16 activations in a
    mixed-precision run still reach the kernels; the weights' gradients come back in their own dtype.
    """
    check_moe_args(x, indices, weights, w_gate, w_up, w_down)
    if torch.is_autocast_enabled(x.device.type):
        low = torch.get_autocast_dtype(x.device.type)
        x, w_gate, w_up, w_down = (t.to(low) for t in (x, w_gate, w_up, w_down))
    if resolve_impl("moe", x.device, impl, unsupported=_unsupported(x, w_gate, w_up, w_down)) == "triton":
        from core.ops.moe.triton import moe_swiglu_triton

        return moe_swiglu_triton(x, indices, weights, w_gate, w_up, w_down)
    return moe_swiglu_reference(x, indices, weights, w_gate, w_up, w_down)


__all__ = ["moe_swiglu", "moe_swiglu_reference", "route_topk"]
