"""Rotary position embedding on a fraction of each head (Su et al. 2021; Moirai-MoE rotates half).

Public op: `apply_rope(x [B, H, L, D], positions [L] | [B, L], fraction=, base=)`. The reference in
`reference.py` is the spec; the Triton kernel in `triton.py` is imported only when dispatch picks it.
"""

from __future__ import annotations

import importlib.util

import torch

from core.ops.dispatch import register_triton, resolve_impl
from core.ops.rope.reference import rope_inv_freq, rope_reference

# find_spec, not `import triton`: triton fixes interpreted-vs-compiled for its own helpers at import,
# so importing it as a side effect of `import core` would lock the interpreter tests out.
if importlib.util.find_spec("triton") is not None:
    register_triton("rope")


def apply_rope(
    x: torch.Tensor,
    positions: torch.Tensor,
    *,
    fraction: float = 1.0,
    base: float = 10000.0,
    impl: str | None = None,
) -> torch.Tensor:
    """Rotate the first int(D·fraction) dims of x [B, H, L, D] by θ = pos·base^(−2i/R); see `rope_reference`."""
    if resolve_impl("rope", x.device, impl) == "triton":
        from core.ops.rope.triton import rope_triton

        return rope_triton(x, positions, fraction=fraction, base=base)
    return rope_reference(x, positions, fraction=fraction, base=base)


__all__ = ["apply_rope", "rope_reference", "rope_inv_freq"]
