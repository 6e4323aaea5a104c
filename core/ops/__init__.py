"""Ops: each has a pure-torch reference (the spec) and, where written, a Triton kernel, chosen by
`core.ops.dispatch`."""

from core.ops.attention import attention
from core.ops.dispatch import KernelUnavailableError, resolve_impl, used_impls

__all__ = ["attention", "resolve_impl", "used_impls", "KernelUnavailableError"]
