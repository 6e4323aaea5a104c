"""The Triton toolbox every op's kernel module shares: interpreter mode, the one launch helper, tile padding.

Only kernel modules (`core/ops/<op>/triton.py`) import this, so `import triton` happens with them, on the
first call that runs a kernel, never as a side effect of `import core` (see "Interpreter mode").

Launch convention, the same for attention, probsparse, moe, norm and rope:
- Every kernel is launched as `launch(kernel, grid, *args, [traceable=True,] **meta)`; nothing indexes
  `kernel[grid]` itself.
  `launch` re-wraps the kernel for the interpreter mode in force (`launchable`) and launches nothing on an
  empty grid, so launchers need no `if n > 0` guards of their own. Launchers registered as a
  `torch.library.triton_op` (attention, probsparse) pass `traceable=True`: the launch then goes through
  `torch.library.wrap_triton`, so torch.compile can trace it (in eager, triton_op turns the wrapper off and
  the kernel runs directly). Elsewhere (moe, norm, rope) there is no op to trace into, and wrap_triton would
  send every eager launch through the higher-order-op dispatcher instead (~8 µs of host time per launch).
- Grids are tuples of `triton.cdiv(size, BLOCK)` computed on the host from tensor sizes, never from data
  (no device sync); meta arguments are BLOCK_* / flag constexprs plus `num_warps` / `num_stages`.
- Tiles are fixed per op, dtype and padded dim, not autotuned; under the interpreter (`interpreting()`)
  each op picks its smallest tiles (16, the least `tl.dot` takes) so masked tails run on tiny shapes.
- Dims that feed `tl.dot` are padded with `pad_dim` (lanes past the real size are masked to 0); fp32 dots
  run at `dot_precision(dtype)`; inputs read along a unit-stride last dim go through `unit_stride_last`.

Interpreter mode: `triton.jit` picks JITFunction vs InterpretedFunction when the decorator runs (triton 3.9
reads `knobs.runtime.interpret` in `jit()`). That fixes triton.language's own @jit helpers (tl.zeros,
tl.sum, ...) at the first `import triton`: TRITON_INTERPRET=1 must be set before it, which `launchable`
checks with a clear error. Our kernels may be decorated later than that, so `launchable` re-wraps them for
the mode in force at launch. It re-wraps the launched kernel only, not @triton.jit helpers it calls (rope's
`_rope_rotate_tile`): those keep the mode of their module's import, which is why kernel modules are imported
lazily by the ops and why the ops' packages register with the dispatcher through `find_spec`, not `import
triton`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

LOG2E = 1.4426950408889634  # log2(e): exp(x) = exp2(x * LOG2E)
LN2 = 0.6931471805599453  # ln(2): converts a base-2 logsumexp back to natural log

_rewrapped: dict[tuple[int, bool], Any] = {}


def interpreting() -> bool:
    """Whether kernels run in the Triton interpreter now (TRITON_INTERPRET=1, read at every call)."""
    return bool(triton.knobs.runtime.interpret)


def launchable(kernel: Any) -> Any:
    """`kernel` wrapped for the interpret mode in force now (see the module docstring, "Interpreter mode")."""
    interpret = interpreting()
    if interpret and not isinstance(tl.zeros, InterpretedFunction):
        # triton.language's own helpers (tl.zeros, tl.sum, ...) are @jit functions fixed at `import triton`;
        # compiled-mode helpers raise "Cannot call @triton.jit'd outside of the scope of a kernel".
        raise RuntimeError(
            "TRITON_INTERPRET=1 is set but triton was imported without it; set TRITON_INTERPRET=1 before the "
            "first `import triton` (e.g. in the shell that starts pytest)"
        )
    if isinstance(kernel, InterpretedFunction) == interpret:
        return kernel
    key = (id(kernel.fn), interpret)
    if key not in _rewrapped:
        _rewrapped[key] = InterpretedFunction(kernel.fn) if interpret else JITFunction(kernel.fn)
    return _rewrapped[key]


def launch(kernel: Any, grid: Sequence[Any], /, *args: Any, traceable: bool = False, **meta: Any) -> None:
    """Run `kernel` over `grid` with `args` and the constexpr/launch options `meta`; the only way ops launch.

    Re-wrapped for the interpreter mode in force; `traceable=True` (launchers inside a `torch.library.triton_op`)
    goes through `torch.library.wrap_triton` so torch.compile can trace the launch. A grid with a zero dimension
    launches nothing: a plain-int 0 is an empty tensor (under torch.compile a size of 0 is specialised to a
    plain int, so a symbolic size is never 0).
    """
    if any(isinstance(g, int) and g == 0 for g in grid):
        return
    runnable = launchable(kernel)
    if traceable:
        runnable = torch.library.wrap_triton(runnable)
    runnable[tuple(grid)](*args, **meta)


def pad_dim(d: int) -> int:
    """A dim fed to `tl.dot`, padded to a power of two of at least 16; lanes past `d` are masked to 0."""
    return max(16, triton.next_power_of_2(d))


def dot_precision(dtype: torch.dtype) -> str:
    """`tl.dot`'s input_precision for inputs of `dtype`.

    fp32 inputs: 3×TF32 on tensor cores, ~1e-6 relative like true fp32 (plain TF32 costs ~1e-3, and "ieee"
    FMA dots spill 8 KB/thread at D=128). Ignored for 16-bit inputs and by the interpreter.
    """
    return "tf32x3" if dtype == torch.float32 else "tf32"


def unit_stride_last(t: torch.Tensor) -> torch.Tensor:
    """`t` itself when its last dim has unit stride (what the kernels index without a stride), else a copy."""
    return t if t.stride(-1) == 1 else t.contiguous()


__all__ = [
    "LN2",
    "LOG2E",
    "dot_precision",
    "interpreting",
    "launch",
    "launchable",
    "pad_dim",
    "unit_stride_last",
]
