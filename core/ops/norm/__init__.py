"""LayerNorm and RMSNorm over the last dim, fused in Triton where a GPU allows.

Public ops: `layer_norm(x, weight, bias, eps)` and `rms_norm(x, weight, eps)`. The references in
`reference.py` are the spec (fp32 statistics, output in the input's dtype); the kernels in `triton.py`
are imported only when dispatch picks them, so `TRITON_INTERPRET` is read at first use, not at import.
Rows wider than the kernels' one-block limit are passed to the dispatcher as unsupported
(`resolve_impl(..., unsupported=)`): `auto` keeps them on the reference, an explicit `triton` raises.
"""

from __future__ import annotations

import importlib.util

import torch

from core.ops.dispatch import register_triton, resolve_impl
from core.ops.norm.reference import layer_norm_reference, rms_norm_reference

# find_spec, not `import triton`: triton fixes interpreted-vs-compiled for its own helpers at import,
# so importing it as a side effect of `import core` would lock the interpreter tests out.
if importlib.util.find_spec("triton") is not None:
    register_triton("layer_norm")
    register_triton("rms_norm")

_MAX_FUSED_N = 65536  # mirrors MAX_FUSED_N in triton.py; kept here so dispatch never imports triton to decide


def _unsupported(x: torch.Tensor) -> str | None:
    """Why the fused kernels cannot take this call, or None when they can."""
    if x.shape[-1] > _MAX_FUSED_N:
        return f"N={x.shape[-1]} > {_MAX_FUSED_N}: the fused kernels hold one row in a block"
    return None


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
    impl: str | None = None,
) -> torch.Tensor:
    """LayerNorm of x [..., N] over N with optional affine weight/bias [N]; see `layer_norm_reference`."""
    if resolve_impl("layer_norm", x.device, impl, unsupported=_unsupported(x)) == "triton":
        from core.ops.norm.triton import layer_norm_triton

        return layer_norm_triton(x, weight, bias, eps)
    return layer_norm_reference(x, weight, bias, eps)


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6, impl: str | None = None
) -> torch.Tensor:
    """RMSNorm of x [..., N] over N with an optional weight [N]; see `rms_norm_reference`."""
    if resolve_impl("rms_norm", x.device, impl, unsupported=_unsupported(x)) == "triton":
        from core.ops.norm.triton import rms_norm_triton

        return rms_norm_triton(x, weight, eps)
    return rms_norm_reference(x, weight, eps)


__all__ = ["layer_norm", "rms_norm", "layer_norm_reference", "rms_norm_reference"]
