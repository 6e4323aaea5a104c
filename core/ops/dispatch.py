"""One decision point for every op: run the Triton kernel, a fused PyTorch op, or the PyTorch reference.

`impl` is `"auto" | "triton" | "fused" | "reference"`. An explicit argument other than `"auto"` wins;
otherwise the environment variable `SEER_KERNELS` decides, and failing that `"auto"`.

`auto` picks the fastest implementation that is correct for the call: the Triton kernel where it can run
(a CUDA device, a call it covers), else the op's fused PyTorch implementation where it has one and it
supports the call (attention: `torch.nn.functional.scaled_dot_product_attention`, which on CPU is
several times faster than the reference), else the reference. The reference stays the spec every route
is tested against. The decision is made from
the tensors' device, never from `import triton` alone: a Triton launch on CPU tensors raises unless
`TRITON_INTERPRET=1` (the interpreter the tests use). `auto` falls back to the reference with one log
line per op and reason; an explicit `triton` that cannot run raises `KernelUnavailableError`.

`auto` picks Triton only on a CUDA device: the interpreter is a correctness tool, thousands of times
slower than the reference, so it runs only when `triton` is asked for explicitly (as the kernel tests
do) and never by accident because `TRITON_INTERPRET=1` is set.

Calls a kernel does not cover (dropout, wide heads, other dtypes, ...) are the op's to judge: it passes
`resolve_impl(..., unsupported=<why not>)`, and the same rule applies with that reason: `auto` falls back
with one log line per (op, reason), an explicit `triton` raises `KernelUnavailableError` naming it. The
ops decide their reasons without importing triton (see core/ops/triton_utils.py, "Interpreter mode").
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from collections.abc import Callable

import torch

log = logging.getLogger("seer.kernels")

IMPLS = ("auto", "triton", "fused", "reference")

# Ops that have a Triton kernel / a fused PyTorch implementation (each op's package adds itself).
_TRITON_OPS: set[str] = set()
_FUSED_OPS: set[str] = set()
_warned: set[tuple[str, str, str]] = set()
_used: dict[str, str] = {}


class KernelUnavailableError(RuntimeError):
    """An explicit `impl="triton"` request that cannot be met on this device or for this op."""


def register_triton(op: str) -> None:
    _TRITON_OPS.add(op)


def register_fused(op: str) -> None:
    _FUSED_OPS.add(op)


Why = str | None | Callable[[], str | None]  # a reason, or a check run only when the route is considered


def _reason(why: Why) -> str | None:
    return why() if callable(why) else why


@functools.cache
def _triton_importable() -> bool:
    """Looked up once per process: a find_spec on every op call cost ~10% of a small cached decode step."""
    return importlib.util.find_spec("triton") is not None


def triton_status(op: str, device: torch.device, explicit: bool = True) -> tuple[bool, str]:
    """Whether op's Triton kernel can run on `device` (for an explicit request or for `auto`), and why not."""
    if op not in _TRITON_OPS:
        return False, f"no Triton kernel for {op!r} yet"
    if not _triton_importable():
        return False, "the triton package is not installed"
    if device.type == "cuda":
        return True, "cuda device"
    if os.environ.get("TRITON_INTERPRET") == "1":
        if explicit:
            return True, "TRITON_INTERPRET=1 (interpreter)"
        return False, "TRITON_INTERPRET=1 runs kernels in the interpreter only on an explicit impl='triton'"
    return False, f"Triton needs a CUDA device (got {device.type}); set TRITON_INTERPRET=1 to interpret on CPU"


def requested_impl(impl: str | None = None) -> str:
    """The impl asked for: an explicit argument, else `SEER_KERNELS`, else `auto`."""
    choice = impl if impl not in (None, "auto") else os.environ.get("SEER_KERNELS", "auto")
    choice = (choice or "auto").strip().lower()
    if choice not in IMPLS:
        raise ValueError(f"unknown kernel impl {choice!r}; use one of {', '.join(IMPLS)} (SEER_KERNELS or impl=)")
    return choice


def resolve_impl(
    op: str,
    device: torch.device,
    impl: str | None = None,
    *,
    unsupported: str | None = None,
    fused_unsupported: Why = None,
) -> str:
    """`"triton"`, `"fused"` or `"reference"` for this call; records the choice for run tags (`used_impls`).

    `unsupported` is the op's reason its kernel cannot take this particular call (None: it can). An explicit
    `triton` request raises with that reason first; under `auto` it counts only where the kernel could
    otherwise run (elsewhere the device's reason is the one logged). `fused_unsupported` is the same for the
    op's fused PyTorch route (a callable is evaluated only when that route is considered).
    """
    choice = requested_impl(impl)
    if choice == "reference":
        chosen = "reference"
    elif choice == "fused":
        why_not = f"no fused implementation for {op!r}" if op not in _FUSED_OPS else _reason(fused_unsupported)
        if why_not is not None:
            raise KernelUnavailableError(f"impl='fused' requested for {op!r} but it cannot run: {why_not}")
        chosen = "fused"
    else:
        ok, why = triton_status(op, device, explicit=choice == "triton")
        if unsupported is not None and (ok or choice == "triton"):
            ok, why = False, unsupported
        if ok:
            chosen = "triton"
        elif choice == "triton":
            raise KernelUnavailableError(f"impl='triton' requested for {op!r} but it cannot run: {why}")
        else:
            fused_why = None if op in _FUSED_OPS else "none"
            if fused_why is None:
                fused_why = _reason(fused_unsupported)
            chosen = "fused" if fused_why is None else "reference"
            detail = why if fused_why in (None, "none") else f"{why}; fused: {fused_why}"
            if (op, chosen, detail) not in _warned:
                _warned.add((op, chosen, detail))
                route = "the fused PyTorch op" if chosen == "fused" else "the PyTorch reference"
                log.info("kernel %s: using %s (%s)", op, route, detail)
    _used[op] = chosen
    return chosen


def reset_used_impls() -> None:
    """Forget which impls ran, e.g. at the start of a training run whose tags should name only its own."""
    _used.clear()


def used_impls() -> dict[str, str]:
    """Which impl each op ran with most recently in this process (logged as MLflow tags)."""
    return dict(_used)
